// Token counts, read from what the backend reports as the stream passes: Ollama's final chunk
// (`prompt_eval_count`, `eval_count`) or OpenAI's `usage` (`prompt_tokens`, `completion_tokens`).
// Both sit at the very end of the response, so the tap copies the stream's last 1 KiB into a
// ring of its own and reads it once, when the response ends. A copy, not references to the
// chunks: a chunk then dies as soon as it is relayed, so the garbage collector's young
// generation never has to move a stream's chunks (its pause grows with what survives).
import { ownBuffer } from './own-bytes.js';

const KEEP_BYTES = 1024;
const PATTERNS = {
  ollamaPrompt: /"prompt_eval_count":\s*(\d+)/g,
  ollamaCompletion: /"eval_count":\s*(\d+)/g,
  openaiPrompt: /"prompt_tokens":\s*(\d+)/g,
  openaiCompletion: /"completion_tokens":\s*(\d+)/g,
  // Anthropic Messages: message_start's input_tokens, message_delta's (cumulative) output_tokens
  anthropicPrompt: /"input_tokens":\s*(\d+)/g,
  anthropicCompletion: /"output_tokens":\s*(\d+)/g,
};

export interface TokenCounts {
  readonly prompt: number | undefined;
  readonly completion: number | undefined;
}

export class TokenTap {
  private readonly ring: Buffer;
  /** where the next byte goes */
  private at = 0;
  /** bytes held (KEEP_BYTES once the stream is that long) */
  private held = 0;

  private memo: string | undefined;
  /** the stream's first bytes: an Anthropic answer says its input tokens first, in message_start */
  private readonly head: Buffer | undefined;
  private headLength = 0;

  /** `keepHead`: an Anthropic answer (the only kind whose counts may not all be at its end) */
  constructor(keepHead = false) {
    // the ring and the head in one allocation of their own
    const bytes = ownBuffer(keepHead ? 2 * KEEP_BYTES : KEEP_BYTES);
    this.ring = bytes.subarray(0, KEEP_BYTES);
    this.head = keepHead ? bytes.subarray(KEEP_BYTES) : undefined;
  }

  push(chunk: Buffer): void {
    this.memo = undefined;
    const head = this.head;
    if (head !== undefined && this.headLength < KEEP_BYTES) this.headLength += chunk.copy(head, this.headLength, 0, Math.min(chunk.length, KEEP_BYTES - this.headLength));
    let from = Math.max(0, chunk.length - KEEP_BYTES);
    while (from < chunk.length) {
      const n = chunk.copy(this.ring, this.at, from, Math.min(chunk.length, from + KEEP_BYTES - this.at));
      from += n;
      this.at = (this.at + n) % KEEP_BYTES;
      this.held = Math.min(KEEP_BYTES, this.held + n);
    }
  }

  /** The last KEEP_BYTES of the stream (fewer when the stream was shorter), as latin1. */
  tail(): string {
    if (this.memo !== undefined) return this.memo;
    const start = (this.at - this.held + KEEP_BYTES) % KEEP_BYTES;
    const text =
      start + this.held <= KEEP_BYTES
        ? this.ring.toString('latin1', start, start + this.held)
        : this.ring.toString('latin1', start, KEEP_BYTES) + this.ring.toString('latin1', 0, this.at);
    this.memo = text;
    return text;
  }

  counts(tail = this.tail()): TokenCounts {
    return {
      prompt: last(tail, PATTERNS.ollamaPrompt) ?? last(tail, PATTERNS.openaiPrompt) ?? last(tail, PATTERNS.anthropicPrompt) ?? this.headPrompt(),
      completion: last(tail, PATTERNS.ollamaCompletion) ?? last(tail, PATTERNS.openaiCompletion) ?? last(tail, PATTERNS.anthropicCompletion),
    };
  }

  private headPrompt(): number | undefined {
    return this.head === undefined ? undefined : last(this.head.toString('latin1', 0, this.headLength), PATTERNS.anthropicPrompt);
  }
}

function last(text: string, re: RegExp): number | undefined {
  let found: number | undefined;
  re.lastIndex = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) found = Number(m[1]);
  return found;
}
