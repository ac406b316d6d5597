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
  return fullName(name).toLowerCase();
}
