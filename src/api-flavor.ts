// Which API a request speaks, from its path: one spelling of each, for every module that asks.

/** What a backend answers: Ollama's native API (and its `/v1`), or only the OpenAI-compatible `/v1`. */
export type Wire = 'ollama' | 'openai';

/** Which API's error shape a route speaks. */
export type ApiFlavor = 'ollama' | 'openai' | 'anthropic';

/** `/v1/...` needs an OpenAI-compatible answer (which Ollama gives too); everything else, Ollama's own. */
export function wireOf(path: string): Wire {
  return path.startsWith('/v1/') || path === '/v1' ? 'openai' : 'ollama';
}

export function flavorOf(path: string): ApiFlavor {
  if (path === '/v1/messages' || path.startsWith('/v1/messages/')) return 'anthropic';
  return wireOf(path);
}
