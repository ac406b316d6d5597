// What one field may contribute to a log line or an error message. A client controls model
// names, paths and header values, and a 30 MB model name must not become a 30 MB 404 body or a
// 30 MB log line (issue 10.5): past the cap, the start of it and its length.

/** The most characters of one client-given field in a message or a log line. */
export const FIELD_CHARS = 256;

export function clip(s: string, max = FIELD_CHARS): string {
  return s.length <= max ? s : `${s.slice(0, max)}…(${s.length} chars)`;
}

/** `clip` for optional fields (log records). */
export function clipped(s: string | undefined, max = FIELD_CHARS): string | undefined {
  return s === undefined ? undefined : clip(s, max);
}
