// Route classes. Generation and embedding routes go through the dispatcher (they hold a GPU
// slot); the catalog routes are answered from the gateway's view of the fleet; every other
// Ollama or OpenAI-compatible path passes straight through to a backend in rotation (they are
// cheap and must never wait behind a generation); the gateway answers its own routes; anything
// else is a 404.

export type RouteKind = 'gateway' | 'catalog' | 'dispatch' | 'management' | 'passthrough' | 'not_found';

export const DISPATCHED_PATHS: ReadonlySet<string> = new Set([
  '/api/generate',
  '/api/chat',
  '/api/embed',
  '/api/embeddings',
  '/v1/chat/completions',
  '/v1/completions',
  '/v1/embeddings',
  '/v1/responses',
  '/v1/messages',
  // GPU work too: jobs like any other (issue 15.5)
  '/v1/images/generations',
  '/v1/images/edits',
  '/v1/audio/transcriptions',
]);

export const GATEWAY_PATHS: ReadonlySet<string> = new Set(['/healthz', '/metrics', '/status', '/status.json']);

/** Answered from the gateway's view of the fleet, no backend asked, no slot taken. */
export const CATALOG_PATHS: ReadonlySet<string> = new Set(['/', '/api/version', '/api/tags', '/api/ps', '/v1/models']);

/**
 * Management: changes what a backend holds, or who it is (signing it out of ollama.com); off
 * unless enabled, admin keys only, aimed at one backend.
 */
export const MANAGEMENT_PATHS: ReadonlySet<string> = new Set(['/api/pull', '/api/push', '/api/create', '/api/copy', '/api/delete', '/api/signout']);

/** The catalog routes Ollama also serves to HEAD; on the others HEAD is a 405, the backend's to give. */
const HEAD_PATHS: ReadonlySet<string> = new Set(['/', '/api/version', '/api/tags']);

/** The admin routes (`/admin/backends/NAME/drain`, `/undrain`): the gateway's own, admin keys only. */
export function isAdminPath(path: string): boolean {
  return path.startsWith('/admin/');
}

export function classifyRoute(method: string, path: string): RouteKind {
  if (GATEWAY_PATHS.has(path) || isAdminPath(path)) return 'gateway';
  if ((method === 'GET' && (CATALOG_PATHS.has(path) || path.startsWith('/v1/models/'))) || (method === 'HEAD' && HEAD_PATHS.has(path))) return 'catalog';
  if (method === 'POST' && DISPATCHED_PATHS.has(path)) return 'dispatch';
  // (DELETE /api/user/keys/:key is Ollama's older sign-out)
  if (MANAGEMENT_PATHS.has(path) || path.startsWith('/api/blobs/') || path.startsWith('/api/user/keys/')) return 'management';
  if (path === '/' || path.startsWith('/api/') || path.startsWith('/v1/')) return 'passthrough';
  return 'not_found';
}

const KNOWN_PATHS: ReadonlySet<string> = new Set([...DISPATCHED_PATHS, ...GATEWAY_PATHS, ...CATALOG_PATHS, ...MANAGEMENT_PATHS, '/api/show']);

/** A bounded label for metrics: known paths as they are, the rest by family. */
export function routeLabel(path: string): string {
  if (KNOWN_PATHS.has(path)) return path;
  if (path.startsWith('/v1/models/')) return '/v1/models/:id';
  if (path.startsWith('/api/blobs/')) return '/api/blobs/:digest';
  if (path.startsWith('/api/')) return '/api/other';
  if (path.startsWith('/v1/')) return '/v1/other';
  return 'other';
}
