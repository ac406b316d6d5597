// Ollama model names: `llama3.2` and `llama3.2:latest` are the same model; a registry host or a
// namespace (`hf.co/org/model:Q4`) keeps its slashes, and only the last segment may carry a tag.

export function fullName(name: string): string {
  const slash = name.lastIndexOf('/');
  return name.indexOf(':', slash + 1) === -1 ? `${name}:latest` : name;
}

/**
 * The name as Ollama looks a model up: tagged, and without regard to case (`Llama3.2` is
 * `llama3.2:latest` there). For matching only; names shown keep the backend's own spelling.
 */
export function modelKey(name: string): string {
  // asked several times a request for the same few names: kept, not rebuilt (bounded)
  let key = keys.get(name);
  if (key === undefined) {
    key = fullName(name).toLowerCase();
    if (keys.size >= MAX_KEPT) keys.clear();
    keys.set(name, key);
  }
  return key;
}

const MAX_KEPT = 4096;
const keys = new Map<string, string>();
