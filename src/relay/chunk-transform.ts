// A change made to a response body as it passes, chunk by chunk (renaming an alias, dropping a
// chunk the client did not ask for). `push` returns what to send now; `flush`, at the end, what
// was held back.

export interface ChunkTransform {
  push(chunk: Buffer): Buffer;
  flush(): Buffer | undefined;
}

/** `first`, then `second`, on every chunk. */
export function chain(first: ChunkTransform | undefined, second: ChunkTransform | undefined): ChunkTransform | undefined {
  if (!first || !second) return first ?? second;
  return {
    push: (chunk) => second.push(first.push(chunk)),
    flush: () => {
      const a = first.flush();
      const out = [a ? second.push(a) : undefined, second.flush()].filter((b): b is Buffer => b !== undefined && b.length > 0);
      return out.length === 0 ? undefined : Buffer.concat(out);
    },
  };
}
