// Day-two operations from a terminal, against a running gateway over HTTP: `ollama-gateway status`
// (the fleet, the queue and the keys from /status.json, for a person or, with --json, a script)
// and `ollama-gateway backends drain|undrain NAME` (the admin routes). The key comes from
// GATEWAY_KEY (or --key) and goes only in the Authorization header.

export interface OpsTarget {
  /** the gateway's base URL */
  readonly url: string;
  readonly key: string | undefined;
}

/** What went wrong, in one line (the gateway's own error message when it answered). */
export class OpsError extends Error {}

async function call(t: OpsTarget, method: 'GET' | 'POST', path: string): Promise<unknown> {
  const url = new URL(path, t.url.endsWith('/') ? t.url : `${t.url}/`);
  let res: Response;
  try {
    res = await fetch(url, { method, headers: t.key ? { authorization: `Bearer ${t.key}` } : {} });
  } catch (err) {
    throw new OpsError(`cannot reach the gateway at ${t.url}: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = text;
  }
  if (!res.ok) {
    const e = (body as { error?: unknown } | undefined)?.error;
    const message = typeof e === 'string' ? e : typeof (e as { message?: unknown } | undefined)?.message === 'string' ? (e as { message: string }).message : text.trim();
    throw new OpsError(`${res.status}: ${message}${res.status === 401 ? ' (set GATEWAY_KEY, or --key)' : ''}`);
  }
  return body;
}

interface Backend {
  name: string;
  healthy: boolean;
  retiring: boolean;
  drained: boolean;
  in_flight: number;
  slots: number;
  last_error?: string | null;
  down_since: string | null;
  loaded: string[];
  tokens_per_second: number;
}

interface About {
  version: string;
  node: string;
  uptime_seconds: number;
  config_loaded_at: string;
}

interface FleetReport {
  view: 'fleet';
  status: string;
  gateway: About;
  backends: Backend[];
  queue: { depth: number; size: number };
  in_flight: number;
  flows: { flow: string; queued: number }[];
  /** with instances sharing Redis */
  shared?: { redis: 'up' | 'down'; instances: number };
  keys: { name: string; requests: number; prompt_tokens: number; completion_tokens: number; errors: number; tokens_per_day: number | null }[];
}

interface KeyReport {
  view: 'key';
  status: string;
  gateway: About;
  fleet: { backends: number; up: number; in_flight: number; queue: { depth: number; size: number } };
  key: { name: string; requests?: number; prompt_tokens?: number; completion_tokens?: number; errors?: number; tokens_month?: number; queued: number; limits: Record<string, number | null> };
}

const clock = (iso: string) => new Date(iso).toISOString().slice(11, 19);
const ago = (s: number) => (s < 90 ? `${s} s` : s < 5400 ? `${Math.round(s / 60)} min` : s < 172800 ? `${Math.round(s / 3600)} h` : `${Math.round(s / 86400)} days`);

function stateOf(b: Backend): string {
  if (b.drained) return 'drained';
  if (b.retiring) return 'retiring';
  if (b.healthy) return 'up';
  return `down${b.down_since ? ` since ${clock(b.down_since)}` : ''}${b.last_error ? `: ${b.last_error}` : ''}`;
}

/** The report as lines a person reads (times in UTC). */
export function formatStatus(r: FleetReport | KeyReport, url: string): string {
  const g = r.gateway;
  const out = [`ollama-gateway v${g.version} (Node ${g.node}) at ${url}: ${r.status}, up ${ago(g.uptime_seconds)}, config loaded ${clock(g.config_loaded_at)} UTC`];
  if (r.view === 'key') {
    const k = r.key;
    const l = k.limits;
    out.push(`the fleet: ${r.fleet.up} of ${r.fleet.backends} backends up · ${r.fleet.in_flight} in flight · ${r.fleet.queue.depth} of ${r.fleet.queue.size} queued`);
    out.push(`key ${k.name}: ${k.requests ?? 0} requests today, ${k.prompt_tokens ?? 0} prompt + ${k.completion_tokens ?? 0} completion tokens, ${k.errors ?? 0} errors; ${k.tokens_month ?? 0} tokens this month; ${k.queued} waiting now`);
    const set = Object.entries(l).filter(([, v]) => v !== null).map(([n, v]) => `${n} ${v}`);
    out.push(`limits: ${set.length ? set.join(', ') : 'none'}`);
    return `${out.join('\n')}\n`;
  }
  const up = r.backends.filter((b) => b.healthy && !b.retiring && !b.drained).length;
  out.push(`backends: ${up} of ${r.backends.length} up · ${r.in_flight} in flight · ${r.queue.depth} of ${r.queue.size} queued`);
  if (r.shared) {
    out.push(
      r.shared.redis === 'up'
        ? `shared: one of ${r.shared.instances} instance(s) sharing slots, queue order, limits and budgets through Redis (in flight and queued above: this instance's)`
        : "shared: REDIS UNREACHABLE: this instance runs on its share of each backend's slots and enforces key limits on its own",
    );
  }
  const width = Math.max(4, ...r.backends.map((b) => b.name.length));
  for (const b of r.backends) {
    const live = b.healthy && !b.drained ? `  ${b.loaded.join(', ') || '—'}  ${b.tokens_per_second} tok/s` : '';
    out.push(`  ${b.name.padEnd(width)}  ${`${b.in_flight}/${b.slots}`.padStart(5)}  ${stateOf(b)}${live}`);
  }
  if (r.flows.length > 0) out.push(`waiting: ${r.flows.map((f) => `${f.flow || '(open)'} ${f.queued}`).join(', ')}`);
  for (const k of r.keys) {
    const budget = k.tokens_per_day === null ? '' : ` of ${k.tokens_per_day} a day`;
    out.push(`key ${k.name || '(open)'}: ${k.requests} requests today, ${k.prompt_tokens} prompt + ${k.completion_tokens} completion tokens${budget}, ${k.errors} errors`);
  }
  return `${out.join('\n')}\n`;
}

export async function status(t: OpsTarget, json: boolean): Promise<string> {
  const r = (await call(t, 'GET', 'status.json')) as FleetReport | KeyReport;
  return json ? `${JSON.stringify(r, null, 2)}\n` : formatStatus(r, t.url);
}

export async function drain(t: OpsTarget, name: string, on: boolean): Promise<string> {
  const r = (await call(t, 'POST', `admin/backends/${encodeURIComponent(name)}/${on ? 'drain' : 'undrain'}`)) as { backend: string; drained: boolean; in_flight: number };
  return on ? `${r.backend}: drained; it finishes the ${r.in_flight} job(s) it holds and takes nothing new\n` : `${r.backend}: back in rotation\n`;
}

const BLOCKS = '▁▂▃▄▅▆▇█';

/** The last `n` values as a one-line chart. */
function sparkline(values: readonly number[], n: number): string {
  const last = values.slice(-n);
  const max = Math.max(1, ...last);
  return last.map((v) => BLOCKS[Math.min(BLOCKS.length - 1, Math.round((v / max) * (BLOCKS.length - 1)))]).join('');
}

function bar(used: number, of: number, width: number): string {
  const full = of <= 0 ? 0 : Math.min(width, Math.round((used / of) * width));
  return `[${'#'.repeat(full)}${'.'.repeat(width - full)}]`;
}

/** One screen of `ollama-gateway top`: the fleet as it is now, and the last minutes as lines. */
export function topFrame(r: FleetReport | KeyReport, url: string, columns = 100): string {
  if (r.view === 'key') return formatStatus(r, url);
  const g = r.gateway;
  const up = r.backends.filter((b) => b.healthy && !b.retiring && !b.drained).length;
  const history = (r as FleetReport & { history?: { queueDepth: number; inFlight: number; requests: number; errors: number }[] }).history ?? [];
  const span = Math.max(10, Math.min(60, columns - 30));
  const lines = [
    `ollama-gateway v${g.version} at ${url}  ${r.status}  up ${ago(g.uptime_seconds)}  config ${clock(g.config_loaded_at)} UTC  (q: Ctrl-C)`,
    `backends ${up}/${r.backends.length} up   in flight ${r.in_flight}   queued ${r.queue.depth}/${r.queue.size}`,
    `queued    ${sparkline(history.map((h) => h.queueDepth), span)}`,
    `in flight ${sparkline(history.map((h) => h.inFlight), span)}`,
    `req/min   ${sparkline(history.map((h) => h.requests * 12), span)}`,
    `errors    ${sparkline(history.map((h) => h.errors * 12), span)}`,
    '',
  ];
  const width = Math.max(7, ...r.backends.map((b) => b.name.length));
  lines.push(`${'BACKEND'.padEnd(width)}  ${'SLOTS'.padEnd(14)}  ${'TOK/S'.padStart(7)}  STATE / LOADED`);
  for (const b of r.backends) {
    const live = b.healthy && !b.drained && !b.retiring;
    lines.push(`${b.name.padEnd(width)}  ${bar(b.in_flight, b.slots, 8)} ${`${b.in_flight}/${b.slots}`.padEnd(4)}  ${String(b.tokens_per_second).padStart(7)}  ${live ? `up  ${b.loaded.join(', ') || '—'}` : stateOf(b)}`);
  }
  if (r.flows.length > 0) {
    lines.push('', 'WAITING (flow: jobs)');
    for (const f of r.flows.slice(0, 10)) lines.push(`  ${(f.flow || '(open)').padEnd(24)} ${f.queued}`);
  }
  lines.push('', `${'KEY'.padEnd(16)} ${'REQUESTS'.padStart(9)} ${'PROMPT'.padStart(9)} ${'OUTPUT'.padStart(9)} ${'ERRORS'.padStart(7)}  TODAY (UTC)`);
  for (const k of r.keys) {
    const budget = k.tokens_per_day === null ? '' : `  ${bar(k.prompt_tokens + k.completion_tokens, k.tokens_per_day, 10)} of ${k.tokens_per_day}`;
    lines.push(`${(k.name || '(open)').padEnd(16)} ${String(k.requests).padStart(9)} ${String(k.prompt_tokens).padStart(9)} ${String(k.completion_tokens).padStart(9)} ${String(k.errors).padStart(7)}${budget}`);
  }
  return lines.map((l) => l.slice(0, columns)).join('\n');
}

/**
 * `ollama-gateway top`: a live view, redrawn in place every `everyMs` until the signal, like
 * htop. A gateway that stops answering is said on the screen, and the view waits for it.
 */
export async function top(t: OpsTarget, everyMs: number, write: (s: string) => void, stop: AbortSignal, columns: () => number): Promise<void> {
  while (!stop.aborted) {
    let frame: string;
    try {
      frame = topFrame((await call(t, 'GET', 'status.json')) as FleetReport | KeyReport, t.url, columns());
    } catch (err) {
      frame = `ollama-gateway top: ${(err as Error).message}`;
    }
    // home, the frame, then clear what the last frame left below it
    write(`\x1b[H${frame.split('\n').join('\x1b[K\n')}\x1b[K\n\x1b[J`);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, everyMs);
      stop.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
  }
}
