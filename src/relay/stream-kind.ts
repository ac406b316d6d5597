// How an answer's body is framed, from its content type: NDJSON lines (Ollama), SSE events
// (OpenAI, Anthropic), or anything else (a whole JSON answer).
export type StreamKind = 'ndjson' | 'sse' | 'other';

export function streamKind(contentType: string | undefined): StreamKind {
  if (!contentType) return 'other';
  if (contentType.includes('ndjson')) return 'ndjson';
  if (contentType.includes('text/event-stream')) return 'sse';
  return 'other';
}
