// The live status page: plain HTML and a little JS, no framework, fed by /status.json. With keys
// configured, the page asks for one (an admin key sees the fleet; any other key its own usage,
// queue and limits). The key is kept in sessionStorage (gone when the tab closes), sent only as
// an Authorization header to /status.json, never put in a URL; the gateway logs key names only.
export const STATUS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>ollama-gateway status</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .2em}h2{font-size:1.05em;margin:1em 0 .4em}#meta{color:#666;margin-bottom:1em}
table{border-collapse:collapse;background:#fff;margin-bottom:1em}th,td{padding:.35em .8em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
.up{color:#1a7f37;font-weight:600}.down{color:#c62828;font-weight:600}small{color:#666}.bar{background:#e6e6e6;width:90px;height:10px;display:inline-block;vertical-align:middle}
.bar i{display:block;height:10px;background:#2b7bd9}.charts{display:flex;gap:1.5em;flex-wrap:wrap}.chart{background:#fff;padding:.6em;border:1px solid #ddd}
.chart h2{margin:0 0 .3em}.legend span{margin-right:1em;font-size:12px}.legend b{display:inline-block;width:10px;height:10px;margin-right:4px}
svg{display:block}[hidden]{display:none!important}form{background:#fff;border:1px solid #ddd;padding:1em;max-width:28em}input{width:100%;padding:.4em;margin:.5em 0;box-sizing:border-box}
</style></head><body>
<h1>ollama-gateway</h1><div id="meta">loading…</div>
<form id="signin" hidden><b>Sign in</b><div id="why"><small>This gateway has API keys: an admin key shows the fleet, any other key its own usage and limits.</small></div>
<input id="key" type="password" autocomplete="off" placeholder="API key" aria-label="API key"><button>Sign in</button>
<div><small>The key stays in this tab (sessionStorage) until it closes, and goes only to /status.json, as a header.</small></div></form>
<div id="fleet" hidden>
<table><thead><tr><th>backend</th><th>state</th><th>in flight</th><th>loaded models</th><th>tokens/s</th></tr></thead><tbody id="backends"></tbody></table>
<div class="charts">
<div class="chart"><h2>Queue depth</h2><svg id="queue" width="360" height="96"></svg><div class="legend" id="queue-legend"></div></div>
<div class="chart"><h2>Queue wait p50 (ms)</h2><svg id="wait" width="360" height="96"></svg><div class="legend" id="wait-legend"></div></div>
<div class="chart"><h2>Requests per minute</h2><svg id="rpm" width="360" height="96"></svg><div class="legend" id="rpm-legend"></div></div>
</div>
<h2>Waiting now, by flow (a key, or a key's user)</h2>
<table><thead><tr><th>flow</th><th>queued</th></tr></thead><tbody id="flows"></tbody></table>
<h2>Usage today (UTC)</h2>
<table><thead><tr><th>key</th><th>requests</th><th>prompt tokens</th><th>completion tokens</th><th>errors</th><th>day budget</th></tr></thead><tbody id="keys"></tbody></table>
</div>
<div id="mine" hidden><h2>Your key</h2><table><tbody id="mykey"></tbody></table></div>
<div><small><a href="#" id="signout" hidden>Sign out</a></small></div>
<script>
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
const time = (t) => new Date(t).toLocaleTimeString();
const ago = (s) => s < 90 ? s + ' s' : s < 5400 ? Math.round(s / 60) + ' min' : s < 172800 ? Math.round(s / 3600) + ' h' : Math.round(s / 86400) + ' days';
const COLORS = ['#2b7bd9', '#c62828', '#d9822b'];
function chart(id, samples, series) {
  const svg = $(id), w = +svg.getAttribute('width'), h = +svg.getAttribute('height') - 14;
  const max = Math.max(1, ...series.flatMap((s) => samples.map(s.value)));
  const n = Math.max(2, samples.length);
  const x = (i) => (i * (w - 4) / (n - 1) + 2).toFixed(1);
  svg.innerHTML = series.map((s, k) => '<polyline fill="none" stroke-width="1.5" stroke="' + COLORS[k] + '" points="' +
    samples.map((p, i) => x(i) + ',' + (h - 2 - s.value(p) / max * (h - 14)).toFixed(1)).join(' ') + '"/>').join('') +
    '<text x="2" y="10" font-size="10" fill="#666">max ' + max + '</text>' +
    '<line x1="2" x2="' + (w - 2) + '" y1="' + h + '" y2="' + h + '" stroke="#ccc"/>' +
    (samples.length ? '<text class="t0" x="2" y="' + (h + 12) + '" font-size="10" fill="#666">' + time(samples[0].t) + '</text>' +
      '<text class="t1" x="' + (w - 2) + '" y="' + (h + 12) + '" font-size="10" fill="#666" text-anchor="end">' + time(samples[samples.length - 1].t) + '</text>' : '');
  $(id + '-legend').innerHTML = series.map((s, k) => '<span><b style="background:' + COLORS[k] + '"></b>' + esc(s.name) + '</span>').join('');
}
function about(g) {
  return 'v' + esc(g.version) + ' on Node ' + esc(g.node) + ' · up ' + ago(g.uptime_seconds) + ' · config loaded ' + time(g.config_loaded_at);
}
function sharing(s) {
  if (!s.shared) return '';
  return s.shared.redis === 'up' ? ' · one of ' + s.shared.instances + ' instance(s) sharing slots and queue through Redis (in flight and queued: this instance only)'
    : ' · <span class="down" id="shared-down">Redis unreachable: this instance runs on its share of the slots</span>';
}
function fleet(s) {
  $('meta').innerHTML = s.backends.filter((b) => b.healthy && !b.retiring && !b.drained).length + ' of ' + s.backends.length + ' backends up · ' + s.in_flight +
    ' in flight · ' + s.queue.depth + ' of ' + s.queue.size + ' queued · ' + about(s.gateway) + sharing(s) + ' · updated ' + time(Date.now());
  $('backends').innerHTML = s.backends.map((b) => {
    const state = b.drained ? '<span class="down">drained</span><br><small>finishes what it holds, takes nothing new</small>' : b.healthy ? (b.retiring ? '<span class="down">retiring</span>' : '<span class="up">up</span>')
      : '<span class="down">down</span>' + (b.down_since ? '<br><small class="since">since ' + time(b.down_since) + '</small>' : '') + (b.last_error ? '<br><small class="why">' + esc(b.last_error) + '</small>' : '');
    return '<tr><td>' + esc(b.name) + '<br><small>' + esc(b.url) + '</small></td><td>' + state + '</td>' +
      '<td><span class="bar"><i style="width:' + Math.min(100, 100 * b.in_flight / b.slots) + '%"></i></span> ' + b.in_flight + ' / ' + b.slots + '</td>' +
      '<td>' + (b.loaded.map(esc).join(', ') || '—') + '</td><td>' + b.tokens_per_second + '</td></tr>';
  }).join('');
  $('flows').innerHTML = s.flows.length ? s.flows.map((f) => '<tr><td>' + (f.flow === '' ? '<i>open</i>' : esc(f.flow)) + '</td><td>' + f.queued + '</td></tr>').join('') : '<tr><td colspan="2"><small>nobody waits</small></td></tr>';
  $('keys').innerHTML = s.keys.map((k) => {
    const used = k.prompt_tokens + k.completion_tokens;
    const budget = k.tokens_per_day === null ? '—' : '<span class="bar"><i style="width:' + Math.min(100, 100 * used / k.tokens_per_day) + '%"></i></span> ' + used + ' / ' + k.tokens_per_day;
    return '<tr><td>' + (k.name === '' ? '<i>open (no keys)</i>' : esc(k.name)) + '</td><td>' + k.requests + '</td><td>' + k.prompt_tokens + '</td><td>' + k.completion_tokens + '</td><td>' + k.errors + '</td><td>' + budget + '</td></tr>';
  }).join('');
  chart('queue', s.history, [{ name: 'jobs waiting', value: (h) => h.queueDepth }]);
  chart('wait', s.history, [{ name: 'median wait of the jobs served', value: (h) => h.waitP50Ms }]);
  chart('rpm', s.history, [{ name: 'requests', value: (h) => h.requests * 12 }, { name: 'errors (4xx and 5xx, as the key table counts them)', value: (h) => h.errors * 12 }]);
}
function mine(s) {
  const k = s.key, l = k.limits, or = (v) => (v === null || v === undefined ? '—' : v);
  $('meta').innerHTML = 'signed in as <b>' + esc(k.name) + '</b> · the fleet: ' + s.fleet.up + ' of ' + s.fleet.backends + ' backends up, ' + s.fleet.in_flight +
    ' in flight, ' + s.fleet.queue.depth + ' of ' + s.fleet.queue.size + ' queued · ' + about(s.gateway) + ' · updated ' + time(Date.now());
  const rows = [['requests today', k.requests], ['prompt tokens today', k.prompt_tokens], ['completion tokens today', k.completion_tokens], ['errors today', k.errors],
    ['your jobs waiting now', k.queued], ['tokens this month', k.tokens_month], ['day budget', or(l.tokens_per_day)], ['month budget', or(l.tokens_per_month)],
    ['tokens per minute', or(l.tokens_per_minute)], ['requests per minute', or(l.requests_per_minute)], ['burst', or(l.burst)], ['at once', or(l.max_concurrent)], ['waiting at most', or(l.max_queued)]];
  $('mykey').innerHTML = rows.map((r) => '<tr><th>' + r[0] + '</th><td>' + esc(r[1]) + '</td></tr>').join('');
}
/** Nothing of one view stays in the page when it shows another (a shared screen after sign-out). */
function clear(keep) {
  for (const id of ['backends', 'flows', 'keys', 'queue', 'wait', 'rpm', 'queue-legend', 'wait-legend', 'rpm-legend']) if (keep !== 'fleet') $(id).innerHTML = '';
  if (keep !== 'key') $('mykey').innerHTML = '';
}
async function refresh() {
  const key = sessionStorage.getItem('ogw-key');
  try {
    const res = await fetch('status.json', { cache: 'no-store', headers: key ? { authorization: 'Bearer ' + key } : {} });
    if (res.status === 401 || res.status === 403) {
      if (key) sessionStorage.removeItem('ogw-key');
      clear();
      $('signin').hidden = false; $('fleet').hidden = true; $('mine').hidden = true; $('signout').hidden = true;
      $('meta').textContent = key ? 'that key was not accepted' : 'sign in to see the gateway';
      return;
    }
    const s = await res.json();
    $('signin').hidden = true; $('signout').hidden = !key;
    $('fleet').hidden = s.view !== 'fleet'; $('mine').hidden = s.view !== 'key';
    clear(s.view);
    if (s.view === 'fleet') fleet(s); else mine(s);
  } catch (e) {
    $('meta').textContent = 'cannot reach the gateway: ' + e;
  }
}
$('signin').addEventListener('submit', (e) => {
  e.preventDefault();
  const key = $('key').value.trim();
  $('key').value = '';
  if (key) sessionStorage.setItem('ogw-key', key);
  refresh();
});
$('signout').addEventListener('click', (e) => {
  e.preventDefault();
  sessionStorage.removeItem('ogw-key');
  clear();
  refresh();
});
refresh();
setInterval(refresh, 2000);
</script></body></html>
`;
