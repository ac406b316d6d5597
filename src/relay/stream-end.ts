// Did the stream end the way the protocol says it must? An Ollama generation stream ends with a
// `"done":true` chunk, an OpenAI chat or completion stream with `data: [DONE]`. A backend that
// stops short (it died, it sent garbage, it closed early) would leave the client waiting for a
// end that never came, or taking a cut answer for a whole one; the relay then adds its own final
// error line. Scanning costs one Buffer.indexOf per chunk; only the last few bytes of the
// previous chunk are kept (copied, so the chunk itself can die young).

const DONE = Buffer.from('"done":true');
const SSE_DONE = 'data: [DONE]';

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

/** The grammars whose end is checked: Ollama's NDJSON, OpenAI's SSE, Anthropic's named-event SSE. */
export type EndKind = 'ndjson' | 'sse' | 'anthropic';

export class StreamEndCheck {
  private sawDone = false;
  /** the end of the previous chunk, for a marker split across two chunks */
  private readonly prev = Buffer.allocUnsafe(DONE.length - 1);
  private prevLength = 0;

  constructor(private readonly kind: EndKind) {}

  push(chunk: Buffer): void {
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

  /** `tail`: the last bytes of the stream (latin1). */
  verdict(tail: string): EndVerdict {
    const lastLine = tail.trimEnd().split(/\r\n|\r|\n/).pop() ?? '';
    if (this.kind === 'ndjson') {
      if (this.sawDone) return 'complete';
      return lastLine.startsWith('{"error"') ? 'backend_error' : 'cut_short';
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
  return undefined;
}
