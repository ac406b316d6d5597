// The process log's destination: lines batched onto a file descriptor, none lost at exit, none
// reordered, the event loop never held up by a slow reader, and memory bounded by dropping (and
// saying so) when the reader has stopped.
import t from 'tap';
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineBatcher } from '../dist/src/log/line-batcher.js';
import { sleep, until, type Teardown } from './helpers.js';

const dist = fileURLToPath(new URL('../dist/src/', import.meta.url));

function tempFile(t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'line-batcher-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'log');
}

/** Runs `code` (an ES module) in a child whose stdout is a pipe; `readAfterMs` before reading it. */
async function child(code: string, readAfterMs = 0): Promise<{ out: string; err: string; status: number | null }> {
  const p = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, DIST: dist } });
  let err = '';
  p.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const chunks: Buffer[] = [];
  const exited = new Promise<number | null>((resolve) => p.once('close', (status) => resolve(status)));
  await sleep(readAfterMs);
  p.stdout.on('data', (d: Buffer) => chunks.push(d));
  const status = await exited;
  return { out: Buffer.concat(chunks).toString('utf8'), err, status };
}

const numbered = (out: string) =>
  out
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { n?: number; dropped?: number; level?: string | number; msg?: string });

t.test('lines wait for a batch (or the flush interval) and arrive whole and in order', async (t) => {
  const path = tempFile(t);
  const fd = openSync(path, 'a');
  const b = new LineBatcher(fd, { batchChars: 4096, flushEveryMs: 150 });
  t.teardown(() => {
    b.close();
    closeSync(fd);
  });
  for (let i = 0; i < 10; i++) b.write(`line ${i}\n`);
  await sleep(20);
  t.equal(readFileSync(path, 'utf8'), '', 'a few short lines wait for more');
  await until(() => readFileSync(path, 'utf8').length > 0, 'the flush interval');
  t.equal(readFileSync(path, 'utf8'), Array.from({ length: 10 }, (_, i) => `line ${i}\n`).join(''));
  // a batch's worth goes at once, without waiting for the interval
  const long = `${'x'.repeat(99)}\n`;
  for (let i = 0; i < 50; i++) b.write(long);
  await until(() => readFileSync(path, 'utf8').length >= 4096, 'a full batch written before the interval', 120);
  // flush calls back once all of it is with the OS
  for (let i = 0; i < 3; i++) b.write(`tail ${i} ✓\n`);
  await new Promise<void>((resolve) => b.flush(() => resolve()));
  t.ok(readFileSync(path, 'utf8').endsWith('tail 0 ✓\ntail 1 ✓\ntail 2 ✓\n'), 'flush waited for the last lines');
});

t.test("the gateway's logger loses no line when the process exits", async (t) => {
  for (const how of ['process.exit(0)', 'undefined /* the event loop runs dry */']) {
    const code = `
      const { createLogger } = await import(process.env.DIST + 'log/logger.js');
      const log = createLogger({ level: 'info' });
      for (let n = 0; n < 5000; n++) log.info({ n }, 'request');
      ${how};`;
    const { out, err, status } = await child(code);
    t.equal(status, 0, err);
    const lines = numbered(out);
    t.equal(lines.length, 5000, `every line, after ${how}`);
    t.ok(
      lines.every((l, i) => l.n === i),
      'in order',
    );
  }
});

t.test('a reader that falls behind neither stalls the event loop nor loses a line', async (t) => {
  // process.stdout touched: fd 1, a pipe, becomes non-blocking (writes see EAGAIN when it is full)
  const code = `
    void process.stdout;
    const { createLogger } = await import(process.env.DIST + 'log/logger.js');
    const log = createLogger({ level: 'info' });
    let last = performance.now(), worst = 0;
    const tick = setInterval(() => { const now = performance.now(); worst = Math.max(worst, now - last); last = now; }, 5);
    const pad = 'p'.repeat(200);
    for (let n = 0; n < 20000; n++) { log.info({ n, pad }, 'request'); if (n % 500 === 0) await new Promise((r) => setTimeout(r, 1)); }
    await new Promise((r) => setTimeout(r, 1200));
    clearInterval(tick);
    await new Promise((r) => log.flush(r));
    process.stderr.write(JSON.stringify({ worst }));`;
  const { out, err, status } = await child(code, 1500);
  t.equal(status, 0, err);
  const lines = numbered(out);
  t.equal(lines.length, 20000, 'every line of ~5 MB, written while the reader had stopped');
  t.ok(
    lines.every((l, i) => l.n === i),
    'in order',
  );
  const { worst } = JSON.parse(err) as { worst: number };
  t.ok(worst < 400, `the event loop kept turning while the pipe was full (longest gap ${worst.toFixed(0)} ms of the reader's 1500 ms pause)`);
});

t.test('a reader that stopped costs bounded memory: lines beyond the bound are dropped, and counted in a line', async (t) => {
  const code = `
    void process.stdout;
    const { LineBatcher } = await import(process.env.DIST + 'log/line-batcher.js');
    const b = new LineBatcher(1, { batchChars: 1024, maxPendingChars: 64 * 1024, retryMs: 20 });
    let kept = 0;
    for (let n = 0; n < 20000; n++) if (b.write(JSON.stringify({ n, pad: 'p'.repeat(100) }) + '\\n')) kept++;
    await new Promise((r) => setTimeout(r, 1500));
    await new Promise((r) => b.flush(r));
    b.close();
    process.stderr.write(JSON.stringify({ kept }));`;
  const { out, err, status } = await child(code, 800);
  t.equal(status, 0, err);
  const lines = numbered(out);
  const { kept } = JSON.parse(err) as { kept: number };
  const written = lines.filter((l) => l.n !== undefined);
  const notes = lines.filter((l) => l.dropped !== undefined);
  t.ok(kept < 20000, `some lines were refused (${kept} kept)`);
  t.equal(written.length, kept, 'every line kept was written');
  t.ok(
    written.every((l, i) => i === 0 || l.n! > written[i - 1]!.n!),
    'in order',
  );
  t.equal(notes.length, 1, 'one line says lines were dropped');
  t.equal(notes[0]?.dropped, 20000 - kept, 'and how many');
  t.equal(notes[0]?.level, 'warn');
});
