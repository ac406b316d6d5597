// The model of a multipart/form-data body (`/v1/audio/transcriptions`, `/v1/images/edits`: the
// file and the fields in one body), found by one linear scan for the part named `model`; the
// body itself is forwarded untouched.

/** The text of the part named `field`, or undefined (no such part, or no boundary). */
export function multipartField(body: Buffer, contentType: string, field: string): string | undefined {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  if (!boundary) return undefined;
  const delimiter = Buffer.from(`--${boundary}`);
  const wanted = new RegExp(`\\bname="${field.replace(/[^\w-]/g, '')}"`, 'i');
  for (let at = body.indexOf(delimiter); at !== -1; ) {
    const headStart = at + delimiter.length;
    const headEnd = body.indexOf('\r\n\r\n', headStart);
    if (headEnd === -1) return undefined;
    const next = body.indexOf(delimiter, headEnd + 4);
    if (next === -1) return undefined;
    // the part's headers are small; only they are turned into text
    if (wanted.test(body.toString('latin1', headStart, Math.min(headEnd, headStart + 1024)))) {
      // the value ends with the CRLF before the next delimiter
      const end = body[next - 2] === 0x0d && body[next - 1] === 0x0a ? next - 2 : next;
      return body.toString('utf8', headEnd + 4, end);
    }
    at = next;
  }
  return undefined;
}
