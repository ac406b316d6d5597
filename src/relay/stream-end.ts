// Did the stream end the way the protocol says it must? An Ollama generation stream ends with a
// `"done":true` chunk, an OpenAI chat or completion stream with `data: [DONE]`. A backend that
// stops short (it died, it sent garbage, it closed early) would leave the client waiting for a
// end that never came, or taking a cut answer for a whole one; the relay then adds its own final
// error line. Scanning costs one Buffer.indexOf per chunk; only the last few bytes of the
// previous chunk are kept (copied, so the chunk itself can die young).
import { ownBuffer } from './own-bytes.js';

const DONE = Buffer.from('"done":true');
const SSE_DONE = 'data: [DONE]';
const EVENT = Buffer.from('event:');
/** A Responses stream's last event says how it ended: whole, or failed at the backend. */
const RESPONSES_WHOLE = new Set(['response.completed', 'response.incomplete']);
const RESPONSES_FAILED = new Set(['response.failed', 'error']);
/** longer than any event line (`event: response.function_call_arguments.delta` is 46 bytes) */
const EVENT_LINE_MAX = 96;

/** Does `"done":true` start at the end of `a` and finish at the start of `b`? */
function splitAcross(a: Buffer, b: Buffer): boolean {
  for (let k = 1; k < DONE.length; k++) {
    // the first k bytes of the marker end `a`, the rest begins `b`
    if (k > a.length || DONE.length - k > b.length) continue;
    if (a.compare(DONE, 0, k, a.length - k, a.length) === 0 && b.compare(DONE, k, DONE.length, 0, DONE.length - k) === 0) return true;
  }
  return false;
}

export type EndVerdict = 'complete' | 'backend_error' | 'cut_short';

/** The grammars whose end is checked: Ollama's NDJSON, OpenAI's SSE, Anthropic's and OpenAI Responses' named-event SSE. */
export type EndKind = 'ndjson' | 'sse' | 'anthropic' | 'responses';

export class StreamEndCheck {
  private sawDone = false;
  /** the end of the previous chunk, for a marker split across two chunks */
  private readonly prev = ownBuffer(DONE.length - 1);
  private prevLength = 0;

  /** (Responses) the name of the last event seen, and the start of one cut by a chunk's end */
  private lastEvent = '';
  /** the start of the line the last chunk ended inside ('': it ended a line; undefined: a line too long to be an event's) */
  private partial: string | undefined = '';

  constructor(private readonly kind: EndKind) {}

  push(chunk: Buffer): void {
    if (this.kind === 'responses') return this.pushNamed(chunk);
    if (this.kind !== 'ndjson' || this.sawDone || chunk.length === 0) return;
    if (chunk.indexOf(DONE) !== -1 || (this.prevLength > 0 && splitAcross(this.prev.subarray(0, this.prevLength), chunk))) {
      this.sawDone = true;
      return;
    }
    // a chunk that ends a line (Ollama sends one line a chunk) leaves no marker half-said: the
    // marker holds no newline, so nothing of it can be kept from before the newline
    if (chunk[chunk.length - 1] === 0x0a) {
      this.prevLength = 0;
      return;
    }
    // keep the last bytes of what came so far (a short chunk adds to what was kept)
    const keep = this.prev.length;
    if (chunk.length >= keep) {
      chunk.copy(this.prev, 0, chunk.length - keep);
      this.prevLength = keep;
    } else {
      const old = Math.min(this.prevLength, keep - chunk.length);
      this.prev.copy(this.prev, 0, this.prevLength - old, this.prevLength);
      chunk.copy(this.prev, old);
      this.prevLength = old + chunk.length;
    }
  }

  /**
   * A Responses stream ends with a named event (`response.completed`), whose data may be far
   * longer than the tail the verdict reads (it repeats the whole answer and the request's tools):
   * the name of each event is noted as it passes. About one `lastIndexOf` per chunk; an `event:`
   * line counts only at the start of a line, never inside a data line's JSON, and a line cut by a
   * chunk's end is joined with the next chunk's start (an event line is short; a longer line is
   * data).
   */
  private pushNamed(chunk: Buffer): void {
    let from = 0;
    if (this.partial !== '') {
      // the previous chunk ended inside a line: its end is at this chunk's first newline
      const nl = chunk.indexOf(0x0a);
      if (this.partial !== undefined) {
        const line = this.partial + chunk.toString('latin1', 0, Math.min(nl === -1 ? chunk.length : nl, EVENT_LINE_MAX));
        if (nl === -1) {
          this.partial = line.length > EVENT_LINE_MAX ? undefined : line;
          return;
        }
        this.noteLine(line);
      } else if (nl === -1) {
        return;
      }
      from = nl + 1;
      this.partial = '';
    }
    // the last whole event line that starts in this chunk
    for (let at = chunk.lastIndexOf(EVENT); at >= from; at = at === 0 ? -1 : chunk.lastIndexOf(EVENT, at - 1)) {
      if (at !== from && chunk[at - 1] !== 0x0a && chunk[at - 1] !== 0x0d) continue;
      const nl = chunk.indexOf(0x0a, at);
      if (nl === -1) continue;
      this.noteLine(chunk.toString('latin1', at, nl));
      break;
    }
    // the line this chunk ends inside, kept for the next chunk when it may be an event line
    if (chunk.length > from && chunk[chunk.length - 1] !== 0x0a) {
      const start = Math.max(chunk.lastIndexOf(0x0a) + 1, from);
      this.partial = chunk.length - start > EVENT_LINE_MAX ? undefined : chunk.toString('latin1', start);
    }
  }

  private noteLine(line: string): void {
    if (line.startsWith('event:')) this.lastEvent = line.slice(EVENT.length).trim();
  }

  /** `tail`: the last bytes of the stream (latin1). */
  verdict(tail: string): EndVerdict {
    const lastLine = tail.trimEnd().split(/\r\n|\r|\n/).pop() ?? '';
    if (this.kind === 'ndjson') {
      if (this.sawDone) return 'complete';
      return lastLine.startsWith('{"error"') ? 'backend_error' : 'cut_short';
    }
    if (this.kind === 'responses') {
      if (RESPONSES_WHOLE.has(this.lastEvent)) return 'complete';
      return RESPONSES_FAILED.has(this.lastEvent) ? 'backend_error' : 'cut_short';
    }
    if (this.kind === 'anthropic') {
      // the last event of a whole message is message_stop; a backend's own failure is an error event
      if (/event: ?message_stop\s*\r?\n\s*data:[^\n]*\s*$/.test(tail) || tail.trimEnd().endsWith('{"type":"message_stop"}')) return 'complete';
      return /event: ?error\s*\r?\n/.test(tail) ? 'backend_error' : 'cut_short';
    }
    if (tail.trimEnd().endsWith(SSE_DONE)) return 'complete';
    return lastLine.startsWith('data: {"error"') ? 'backend_error' : 'cut_short';
  }
}

/** The routes whose streams must end with a final marker, and which marker. */
export function expectedEnd(path: string, contentKind: 'ndjson' | 'sse' | 'other'): EndKind | undefined {
  if (contentKind === 'ndjson' && (path === '/api/chat' || path === '/api/generate')) return 'ndjson';
  if (contentKind === 'sse' && (path === '/v1/chat/completions' || path === '/v1/completions')) return 'sse';
  if (contentKind === 'sse' && path === '/v1/messages') return 'anthropic';
  if (contentKind === 'sse' && path === '/v1/responses') return 'responses';
  return undefined;
}
