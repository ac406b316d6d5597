// Options that need a new runner when they change (Ollama server/sched.go needsReload): a model
// loaded with another `num_ctx` is, for warmth, another model.

export const RUNNER_OPTIONS = ['num_ctx', 'num_batch', 'num_gpu', 'main_gpu', 'use_mmap', 'num_thread'] as const;

export function runnerKey(options: Record<string, unknown> | undefined): string {
  if (!options) return '';
  return RUNNER_OPTIONS.filter((k) => options[k] !== undefined)
    .map((k) => `${k}=${String(options[k])}`)
    .join(',');
}
