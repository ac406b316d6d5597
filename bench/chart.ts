// The benchmark's figures at a glance, as a self-contained SVG: added latency in milliseconds
// (gateway minus direct, p50 and p99), and throughput as a share of direct.
/* eslint-disable @typescript-eslint/no-explicit-any -- reads the results JSON bench/run.ts wrote */

interface Bar {
  readonly label: string;
  readonly value: number;
  readonly text: string;
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

function panel(title: string, bars: Bar[], y0: number, max: number, unit: string, target?: { value: number; label: string }): { svg: string; height: number } {
  const rowH = 22;
  const left = 300;
  const width = 420;
  const scale = (v: number) => (Math.max(0, v) / max) * width;
  let svg = `<text x="10" y="${y0 + 16}" font-weight="bold">${esc(title)}</text>`;
  bars.forEach((b, i) => {
    const y = y0 + 28 + i * rowH;
    svg += `<text x="${left - 8}" y="${y + 14}" text-anchor="end">${esc(b.label)}</text>`;
    svg += `<rect x="${left}" y="${y + 3}" width="${scale(b.value).toFixed(1)}" height="14" fill="${b.label.includes('p99') ? '#d9822b' : '#2b7bd9'}"/>`;
    svg += `<text x="${left + scale(b.value) + 6}" y="${y + 14}">${esc(b.text)}</text>`;
  });
  const h = 28 + bars.length * rowH;
  if (target) {
    const x = left + scale(target.value);
    svg += `<line x1="${x}" y1="${y0 + 24}" x2="${x}" y2="${y0 + h}" stroke="#555" stroke-dasharray="4 3"/>`;
    svg += `<text x="${x + 4}" y="${y0 + h + 12}" font-size="11" fill="#555">${esc(target.label)}</text>`;
  }
  svg += `<text x="${left + width}" y="${y0 + 16}" text-anchor="end" font-size="11" fill="#555">${esc(unit)}</text>`;
  return { svg, height: h + 24 };
}

export function chart(r: Record<string, any>): string {
  const added: Bar[] = [];
  for (const key of ['streams', 'streams_many']) {
    const s = r[key];
    if (!s) continue;
    const n = s.params.streams;
    added.push({ label: `TTFT p50, ${n} streams`, value: s.ttft.added_p50, text: `+${s.ttft.added_p50} ms` });
    added.push({ label: `TTFT p99, ${n} streams`, value: s.ttft.added_p99, text: `+${s.ttft.added_p99} ms` });
    added.push({ label: `inter-token gap p99, ${n} streams`, value: s.inter_token.added_p99, text: `+${s.inter_token.added_p99} ms` });
  }
  if (r['cancel']) {
    for (const phase of ['streaming', 'before_first_byte', 'queued']) {
      const c = r['cancel'][phase];
      added.push({ label: `cancel p99, ${phase.replace(/_/g, ' ')}`, value: c.p99, text: `${c.p99} ms` });
    }
  }
  if (r['one_slot']) {
    const g = r['one_slot'].backend_idle_gap_ms.gateway;
    added.push({ label: 'dispatch gap p99, one slot', value: g.p99, text: `${g.p99} ms` });
  }
  const ratios: Bar[] = [];
  if (r['rps']) ratios.push({ label: 'requests/s, many slots', value: r['rps'].ratio, text: `${Math.round(r['rps'].ratio * 100)}% (${r['rps'].gateway.rps}/s)` });
  if (r['models']) ratios.push({ label: 'mixed-model trace, round robin ÷ warm-first time', value: Math.min(r['models'].speedup, 1.2), text: `${r['models'].speedup}× faster with warm-first` });
  if (r['one_slot']) ratios.push({ label: 'requests/s, one slot per backend', value: r['one_slot'].rps.ratio, text: `${Math.round(r['one_slot'].rps.ratio * 100)}% (${r['one_slot'].rps.gateway}/s)` });
  const maxAdded = Math.max(12, ...added.map((b) => b.value)) * 1.15;
  const p1 = panel('Added by the gateway (gateway − direct), and cancellation', added, 10, maxAdded, 'ms', { value: 2, label: '2 ms' });
  const p2 = panel('Throughput as a share of direct', ratios, 10 + p1.height, 1.25, 'gateway ÷ direct', { value: 1, label: 'direct' });
  const height = 10 + p1.height + p2.height + 10;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="900" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    p1.svg,
    p2.svg,
    `<text x="10" y="${height - 6}" font-size="10" fill="#777">${esc(`ollama-gateway bench ${r['date']} — ${r['machine']}`)}</text>`,
    '</svg>',
    '',
  ].join('\n');
}
