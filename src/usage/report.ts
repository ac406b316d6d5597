// `ollama-gateway usage`: the ledger as a table for people or JSON for scripts.
import { dayOf } from './period.js';
import type { UsageRow } from './store.js';

/** `YYYY-MM-DD`, or `Nd` for the last N days (today included). */
export function parseSince(value: string, now = Date.now()): string | undefined {
  if (/^\d{4}-\d{2}-\d{2}$/.test(value) && !Number.isNaN(Date.parse(`${value}T00:00:00Z`))) return value;
  const m = /^(\d{1,4})d$/.exec(value);
  if (m && Number(m[1]) >= 1) return dayOf(now - (Number(m[1]) - 1) * 86_400_000);
  return undefined;
}

export function usageJson(rows: readonly UsageRow[]): string {
  return `${JSON.stringify(
    rows.map((r) => ({ day: r.day, key: r.key, model: r.model, requests: r.requests, prompt_tokens: r.promptTokens, completion_tokens: r.completionTokens, errors: r.errors })),
    null,
    2,
  )}\n`;
}

export function usageTable(rows: readonly UsageRow[]): string {
  const header = ['DAY', 'KEY', 'MODEL', 'REQUESTS', 'PROMPT', 'COMPLETION', 'TOTAL', 'ERRORS'];
  const line = (r: Omit<UsageRow, 'day' | 'key' | 'model'>, day: string, key: string, model: string) => [
    day,
    key,
    model,
    String(r.requests),
    String(r.promptTokens),
    String(r.completionTokens),
    String(r.promptTokens + r.completionTokens),
    String(r.errors),
  ];
  const body = rows.map((r) => line(r, r.day, r.key === '' ? '(open)' : r.key, r.model));
  const sum = rows.reduce(
    (a, r) => ({ requests: a.requests + r.requests, promptTokens: a.promptTokens + r.promptTokens, completionTokens: a.completionTokens + r.completionTokens, errors: a.errors + r.errors }),
    { requests: 0, promptTokens: 0, completionTokens: 0, errors: 0 },
  );
  const all = [header, ...body, line(sum, 'total', '', '')];
  const widths = header.map((_, i) => Math.max(...all.map((cells) => cells[i]!.length)));
  // text columns to the left, numbers to the right
  return `${all.map((cells) => cells.map((c, i) => (i < 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd()).join('\n')}\n`;
}
