// Token counts, read from what the backend reports as the stream passes: Ollama's final chunk
// (`prompt_eval_count`, `eval_count`) or OpenAI's `usage` (`prompt_tokens`, `completion_tokens`).
// Both sit at the very end of the response, so the tap keeps references to the last few chunks
// (about 1 KiB, no copies on the hot path) and reads them once, when the response ends.

const KEEP_BYTES = 1024;
const PATTERNS = {
  ollamaPrompt: /"prompt_eval_count":\s*(\d+)/g,
  ollamaCompletion: /"eval_count":\s*(\d+)/g,
  openaiPrompt: /"prompt_tokens":\s*(\d+)/g,
  openaiCompletion: /"completion_tokens":\s*(\d+)/g,
};

export interface TokenCounts {
  readonly prompt: number | undefined;
  readonly completion: number | undefined;
}

export class TokenTap {
  private chunks: Buffer[] = [];
  private kept = 0;

  private memo: string | undefined;

  push(chunk: Buffer): void {
    this.memo = undefined;
    this.chunks.push(chunk);
    this.kept += chunk.length;
    while (this.chunks.length > 1 && this.kept - this.chunks[0]!.length >= KEEP_BYTES) {
      this.kept -= this.chunks.shift()!.length;
    }
  }

  /** The last KEEP_BYTES of the stream (fewer when the stream was shorter), as latin1. */
  tail(): string {
    if (this.memo !== undefined) return this.memo;
    let text = '';
    for (let i = this.chunks.length - 1; i >= 0 && text.length < KEEP_BYTES; i--) {
      const c = this.chunks[i]!;
      text = c.toString('latin1', Math.max(0, c.length - (KEEP_BYTES - text.length))) + text;
    }
    this.memo = text;
    return text;
  }

  counts(tail = this.tail()): TokenCounts {
    return {
      prompt: last(tail, PATTERNS.ollamaPrompt) ?? last(tail, PATTERNS.openaiPrompt),
      completion: last(tail, PATTERNS.ollamaCompletion) ?? last(tail, PATTERNS.openaiCompletion),
    };
  }
}

function last(text: string, re: RegExp): number | undefined {
  let found: number | undefined;
  re.lastIndex = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) found = Number(m[1]);
  return found;
}
