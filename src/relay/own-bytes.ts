// Bytes a stream keeps beyond the chunk that brought them (a tap's ring, the end of the last
// chunk, a fragment held for the next one, an alias rename's needle) live in buffers of their
// own. Node cuts small `Buffer.allocUnsafe` and `Buffer.from` results out of a shared 8 KiB slab,
// and a slab lives as long as any slice of it: each stream's kept slices, among the chunk frames
// cut from the same slabs, held about 1,300 slabs (10 MiB) alive at 2,000 open streams.

/** `size` bytes, uninitialised, in an allocation of their own (not a slice of Node's pool). */
export function ownBuffer(size: number): Buffer {
  return Buffer.allocUnsafeSlow(size);
}

/** A copy of `bytes` (or a string's UTF-8) in an allocation of its own. */
export function ownCopy(bytes: Uint8Array | string): Buffer {
  if (typeof bytes === 'string') {
    const b = Buffer.allocUnsafeSlow(Buffer.byteLength(bytes));
    b.write(bytes);
    return b;
  }
  const b = Buffer.allocUnsafeSlow(bytes.length);
  b.set(bytes);
  return b;
}
