// When the gateway asked an OpenAI stream for its usage (`stream_options.include_usage`) for
// token accounting and the client did not, the extra last chunk (`"choices":[]` with `usage`)
// must not reach the client. SSE events pass through as soon as they are whole; only an event
// cut by a chunk boundary waits for its end, and only that event is looked at.
import type { ChunkTransform } from './chunk-transform.js';

const EVENT_END = Buffer.from('\n\n');
const USAGE = Buffer.from('"usage":');
const NO_CHOICES = Buffer.from('"choices":[]');

export class UsageChunkDrop implements ChunkTransform {
  private held: Buffer | undefined;

  push(chunk: Buffer): Buffer {
    const input = this.held ? Buffer.concat([this.held, chunk]) : chunk;
    this.held = undefined;
    const keep: Buffer[] = [];
    let from = 0;
    let dropped = false;
    for (let end = input.indexOf(EVENT_END); end !== -1; end = input.indexOf(EVENT_END, from)) {
      const event = input.subarray(from, end + EVENT_END.length);
      if (isUsageOnly(event)) dropped = true;
      else keep.push(event);
      from = end + EVENT_END.length;
    }
    if (from < input.length) this.held = Buffer.from(input.subarray(from));
    if (!dropped && from === input.length) return input;
    return Buffer.concat(keep);
  }

  flush(): Buffer | undefined {
    const h = this.held;
    this.held = undefined;
    return h && isUsageOnly(h) ? undefined : h;
  }
}

function isUsageOnly(event: Buffer): boolean {
  return event.indexOf(NO_CHOICES) !== -1 && event.indexOf(USAGE) !== -1;
}
