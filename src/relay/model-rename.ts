// For an aliased request the backend echoes the target's name (`"model":"llama3.2:3b"`); the
// client must see the name it asked for. Each chunk is rewritten as it passes; only when a chunk
// ends in the first bytes of the needle are those few bytes held back for the next chunk, so a
// stream keeps its timing.
import { ownCopy } from './own-bytes.js';

export class ModelRename {
  private readonly needle: Buffer;
  private readonly replacement: Buffer;
  private held: Buffer | undefined;

  constructor(target: string, alias: string) {
    this.needle = ownCopy(`"model":${JSON.stringify(target)}`);
    this.replacement = ownCopy(`"model":${JSON.stringify(alias)}`);
  }

  /** The rewritten chunk (possibly short of a few held-back bytes). */
  push(chunk: Buffer): Buffer {
    const input = this.held ? Buffer.concat([this.held, chunk]) : chunk;
    this.held = undefined;
    const parts: Buffer[] = [];
    let from = 0;
    for (let at = input.indexOf(this.needle); at !== -1; at = input.indexOf(this.needle, from)) {
      parts.push(input.subarray(from, at), this.replacement);
      from = at + this.needle.length;
    }
    // a needle cut by the chunk boundary: keep its start for the next chunk
    const keep = this.partialAtEnd(input, from);
    parts.push(input.subarray(from, input.length - keep));
    if (keep > 0) this.held = ownCopy(input.subarray(input.length - keep));
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  /** What is still held back when the stream ends. */
  flush(): Buffer | undefined {
    const h = this.held;
    this.held = undefined;
    return h;
  }

  private partialAtEnd(b: Buffer, from: number): number {
    const max = Math.min(this.needle.length - 1, b.length - from);
    for (let k = max; k > 0; k--) {
      if (b.compare(this.needle, 0, k, b.length - k, b.length) === 0) return k;
    }
    return 0;
  }
}
