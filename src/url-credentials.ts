// Credentials in a backend's URL (`http://user:password@host`): hidden wherever the URL is shown,
// and sent as the `Authorization: Basic` header they stand for.

/** A URL fit for logs and status pages: any user and password replaced by `***`. */
export function redactUrl(url: string): string {
  const u = new URL(url);
  if (!u.username && !u.password) return url;
  u.username = u.username ? '***' : '';
  u.password = u.password ? '***' : '';
  return u.toString().replace(/\/$/, '');
}

/**
 * A backend URL's `user:password@` as the `Authorization: Basic` header it stands for. undici
 * ignores userinfo in a URL, so a password-protected Ollama (behind a reverse proxy with basic
 * auth) would get no credentials at all; they are sent on every request instead (generations,
 * probes, catalog polls).
 */
export function basicAuth(url: string): string | undefined {
  const u = new URL(url);
  if (!u.username && !u.password) return undefined;
  return `Basic ${Buffer.from(`${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`).toString('base64')}`;
}
