// The path a backend will route on. Ollama (gin) routes on Go's decoded URL.Path, so
// `/api/%63hat` is `/api/chat` there; a gateway that classifies the raw path lets such a request
// skip slots, key globs, budgets and the ledger (issue 10.1). So routes are decided on the path
// decoded as Go decodes it, with `//`, `.` and `..` segments collapsed and a trailing slash
// dropped (gin redirects `/api/chat/` to `/api/chat`), and the backend is sent that same path,
// re-encoded so that it decodes to exactly what was classified. A path that cannot be decoded
// (a bad escape, invalid UTF-8, a control character) is refused.

export type NormalizedPath =
  | { readonly ok: true; /** decoded: what routes are decided on */ readonly path: string; /** what goes on the wire upstream */ readonly wire: string }
  | { readonly ok: false; readonly reason: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Already canonical: no escapes, no empty or dot segments, no trailing slash (the common case: no work). */
function canonical(raw: string): boolean {
  return raw.indexOf('%') === -1 && raw.indexOf('//') === -1 && raw.indexOf('/.') === -1 && (raw.length === 1 || raw.charCodeAt(raw.length - 1) !== 0x2f);
}

export function normalizePath(raw: string): NormalizedPath {
  // `*` and absolute-form targets route nowhere; leave them to the router's 404
  if (raw.charCodeAt(0) !== 0x2f) return { ok: true, path: raw, wire: raw };
  if (canonical(raw)) return { ok: true, path: raw, wire: raw };
  let decoded: string;
  if (raw.indexOf('%') === -1) decoded = raw;
  else {
    const bytes = Buffer.from(raw, 'latin1');
    let n = 0;
    for (let i = 0; i < bytes.length; i++) {
      const c = bytes[i]!;
      if (c !== 0x25) {
        bytes[n++] = c;
        continue;
      }
      const hi = hex(bytes[i + 1]);
      const lo = hex(bytes[i + 2]);
      if (hi < 0 || lo < 0) return { ok: false, reason: 'a malformed percent-escape' };
      bytes[n++] = hi * 16 + lo;
      i += 2;
    }
    try {
      decoded = utf8.decode(bytes.subarray(0, n));
    } catch {
      return { ok: false, reason: 'bytes that are not UTF-8' };
    }
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(decoded)) return { ok: false, reason: 'a control character' };
  const out: string[] = [];
  for (const seg of decoded.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') out.pop();
    else out.push(seg);
  }
  const path = `/${out.join('/')}`;
  return { ok: true, path, wire: `/${out.map(encodeSegment).join('/')}` };
}

function hex(c: number | undefined): number {
  if (c === undefined) return -1;
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/** A segment as the wire carries it: pchar (RFC 3986 §3.3) kept, everything else escaped. */
function encodeSegment(seg: string): string {
  return encodeURIComponent(seg).replace(/%(3A|40|24|26|2B|2C|3B|3D)/g, (m) => decodeURIComponent(m));
}
