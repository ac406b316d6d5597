// The live status page: plain HTML and a little JS, no framework, fed by /status.json.
export const STATUS_PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>ollama-gateway status</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.3em;margin:0 0 .2em}#meta{color:#666;margin-bottom:1em}
table{border-collapse:collapse;background:#fff;margin-bottom:1.2em}th,td{padding:.35em .8em;border-bottom:1px solid #ddd;text-align:left}
.up{color:#1a7f37;font-weight:600}.down{color:#c62828;font-weight:600}.bar{background:#e6e6e6;width:90px;height:10px;display:inline-block;vertical-align:middle}
.bar i{display:block;height:10px;background:#2b7bd9}.charts{display:flex;gap:1.5em;flex-wrap:wrap}.chart{background:#fff;padding:.6em;border:1px solid #ddd}
.chart h2{font-size:1em;margin:0 0 .3em}svg{display:block}
</style></head><body>
<h1>ollama-gateway</h1><div id="meta">loading…</div>
<table><thead><tr><th>backend</th><th>state</th><th>in flight</th><th>loaded models</th><th>tokens/s</th></tr></thead><tbody id="backends"></tbody></table>
<div class="charts">
<div class="chart"><h2>Queue depth</h2><svg id="queue" width="360" height="80"></svg></div>
<div class="chart"><h2>Queue wait p50 (ms)</h2><svg id="wait" width="360" height="80"></svg></div>
<div class="chart"><h2>Requests and errors per minute</h2><svg id="rpm" width="360" height="80"></svg></div>
</div>
<h2 style="font-size:1.1em">Usage today (UTC)</h2>
<table><thead><tr><th>key</th><th>requests</th><th>prompt tokens</th><th>completion tokens</th><th>errors</th><th>day budget</th></tr></thead><tbody id="keys"></tbody></table>
<script>
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
function line(svg, series, colors) {
  const w = +svg.getAttribute('width'), h = +svg.getAttribute('height');
  const max = Math.max(1, ...series.flat());
  const n = Math.max(2, ...series.map((s) => s.length));
  svg.innerHTML = series.map((s, k) => '<polyline fill="none" stroke-width="1.5" stroke="' + colors[k] + '" points="' +
    s.map((v, i) => (i * (w - 4) / (n - 1) + 2).toFixed(1) + ',' + (h - 2 - v / max * (h - 14)).toFixed(1)).join(' ') + '"/>').join('') +
    '<text x="2" y="10" font-size="10" fill="#666">max ' + max + '</text>';
}
async function refresh() {
  try {
    const s = await (await fetch('status.json', { cache: 'no-store' })).json();
    document.getElementById('meta').textContent = s.backends.filter((b) => b.healthy).length + ' of ' + s.backends.length +
      ' backends up · ' + s.in_flight + ' in flight · ' + s.queue.depth + ' of ' + s.queue.size + ' queued · updated ' + new Date().toLocaleTimeString();
    document.getElementById('backends').innerHTML = s.backends.map((b) =>
      '<tr><td>' + esc(b.name) + '<br><small>' + esc(b.url) + '</small></td><td class="' + (b.healthy ? 'up">up' : 'down">down') + '</td>' +
      '<td><span class="bar"><i style="width:' + Math.min(100, 100 * b.in_flight / b.slots) + '%"></i></span> ' + b.in_flight + ' / ' + b.slots + '</td>' +
      '<td>' + (b.loaded.map(esc).join(', ') || '—') + '</td><td>' + b.tokens_per_second + '</td></tr>').join('');
    document.getElementById('keys').innerHTML = s.keys.map((k) => {
      const used = k.prompt_tokens + k.completion_tokens;
      const budget = k.tokens_per_day === null ? '—' : '<span class="bar"><i style="width:' + Math.min(100, 100 * used / k.tokens_per_day) + '%"></i></span> ' + used + ' / ' + k.tokens_per_day;
      return '<tr><td>' + (k.name === '' ? '<i>open (no keys)</i>' : esc(k.name)) + '</td><td>' + k.requests + '</td><td>' + k.prompt_tokens + '</td><td>' + k.completion_tokens + '</td><td>' + k.errors + '</td><td>' + budget + '</td></tr>';
    }).join('');
    line(document.getElementById('queue'), [s.history.map((h) => h.queueDepth)], ['#2b7bd9']);
    line(document.getElementById('wait'), [s.history.map((h) => h.waitP50Ms)], ['#d9822b']);
    line(document.getElementById('rpm'), [s.history.map((h) => h.requests * 12), s.history.map((h) => h.errors * 12)], ['#2b7bd9', '#c62828']);
  } catch (e) {
    document.getElementById('meta').textContent = 'cannot reach the gateway: ' + e;
  }
}
refresh();
setInterval(refresh, 2000);
</script></body></html>
`;
