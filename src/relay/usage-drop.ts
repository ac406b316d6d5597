// When the gateway asked an OpenAI stream for its usage (`stream_options.include_usage`) for
// token accounting and the client did not, the extra last chunk (`"choices":[]` with `usage`)
// must not reach the client. SSE events pass through as soon as they are whole; only an event
// cut by a chunk boundary waits for its end, and only that event is looked at.
//
// Events end where the SSE spec says (a blank line, with lines ended by CRLF, LF or CR alike:
// a backend framing with `\r\n\r\n` must not have its whole stream held and dropped, issue
// 10.8). Scanning is linear in the stream's bytes: each byte is looked at once, an event being
// held is kept as a list of pieces and joined once, and an event longer than `maxEventBytes`
// (a usage chunk is a few hundred bytes) is not held at all but passed through as it comes
// (issue 10.9).
import { ownCopy } from './own-bytes.js';
import type { ChunkTransform } from './chunk-transform.js';

const LF = 0x0a;
const CR = 0x0d;
const USAGE = Buffer.from('"usage":');
const NO_CHOICES = Buffer.from('"choices":[]');
const EMPTY = Buffer.alloc(0);

export class UsageChunkDrop implements ChunkTransform {
  /** the start of an event not yet ended (never more than maxEventBytes) */
  private held: Buffer[] = [];
  private heldBytes = 0;
  /** the event under way outgrew the bound: its bytes pass as they come, until it ends */
  private passing = false;
  /** nothing yet on the current line */
  private lineEmpty = true;
  /** the last byte seen was a CR: a LF right after it belongs to the same line end */
  private afterCR = false;
  /** ...and that CR ended an event, sent or dropped: such a LF belongs to it and goes where it went */
  private endedAtCR: 'no' | 'sent' | 'dropped' = 'no';

  constructor(private readonly maxEventBytes = 1024 * 1024) {}

  push(chunk: Buffer): Buffer {
    const out: Buffer[] = [];
    let eventStart = 0;
    let i = 0;
    const n = chunk.length;
    if (this.afterCR && n > 0) {
      this.afterCR = false;
      if (chunk[0] === LF) {
        i = 1;
        if (this.endedAtCR !== 'no') eventStart = 1;
        if (this.endedAtCR === 'sent') out.push(chunk.subarray(0, 1));
      }
      this.endedAtCR = 'no';
    }
    while (i < n) {
      const lf = chunk.indexOf(LF, i);
      const cr = chunk.indexOf(CR, i);
      const at = cr === -1 ? lf : lf === -1 ? cr : Math.min(lf, cr);
      if (at === -1) {
        this.lineEmpty = false;
        break;
      }
      if (at > i) this.lineEmpty = false;
      let end = at + 1;
      if (chunk[at] === CR) {
        if (end < n) {
          if (chunk[end] === LF) end++;
        } else {
          this.afterCR = true;
        }
      }
      i = end;
      if (!this.lineEmpty) {
        this.lineEmpty = true;
        continue;
      }
      // a blank line: the event ends here
      const piece = chunk.subarray(eventStart, end);
      eventStart = end;
      if (this.passing) {
        this.passing = false;
        this.endedAtCR = this.afterCR ? 'sent' : 'no';
        out.push(piece);
        continue;
      }
      const event = this.heldBytes === 0 ? piece : Buffer.concat([...this.held, piece]);
      this.held = [];
      this.heldBytes = 0;
      const kept = !isUsageOnly(event);
      if (kept) out.push(event);
      // a LF that completes this event's last CRLF, in the next chunk, goes where the event went
      this.endedAtCR = !this.afterCR ? 'no' : kept ? 'sent' : 'dropped';
    }
    // what is left is the start of an event that has not ended
    if (eventStart < n) {
      const rest = chunk.subarray(eventStart);
      if (this.passing) out.push(rest);
      else if (this.heldBytes + rest.length > this.maxEventBytes) {
        // too long to be the usage chunk: stop holding it, let it through
        out.push(...this.held, rest);
        this.held = [];
        this.heldBytes = 0;
        this.passing = true;
      } else {
        this.held.push(ownCopy(rest));
        this.heldBytes += rest.length;
      }
    }
    return out.length === 0 ? EMPTY : out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  flush(): Buffer | undefined {
    if (this.heldBytes === 0) return undefined;
    const h = Buffer.concat(this.held);
    this.held = [];
    this.heldBytes = 0;
    return isUsageOnly(h) ? undefined : h;
  }
}

function isUsageOnly(event: Buffer): boolean {
  return event.indexOf(NO_CHOICES) !== -1 && event.indexOf(USAGE) !== -1;
}
