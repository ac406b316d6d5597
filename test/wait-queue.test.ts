// The queue at scale (issue 14) as a pure structure, without sockets: its order across classes,
// weights and flows, model eligibility, warm-first bounds and removal from the middle, and a
// property test that drives it and the plain linear-scan dispatcher it replaced (the reference,
// test/reference-dispatcher.ts) through the same random sequences of arrivals, releases,
// cancellations, backends going down and up and models loading, and asks for the same answers.
import t from 'tap';
import { Dispatcher, type DispatchTarget, type Lease } from '../dist/src/dispatch/dispatcher.js';
import { WaitQueue, type Queued } from '../dist/src/dispatch/wait-queue.js';
import { CancelToken } from '../dist/src/cancel.js';
import { prng } from './helpers.js';
import { ReferenceDispatcher } from './reference-dispatcher.js';

class Box implements DispatchTarget {
  inFlight = 0;
  up = true;
  readonly models: Set<string>;
  readonly warm = new Set<string>();
  constructor(
    readonly name: string,
    readonly slots: number,
    models: string[],
  ) {
    this.models = new Set(models);
  }
  get inRotation(): boolean {
    return this.up;
  }
  serves(model: string | undefined): boolean {
    return model === undefined || this.models.has(model);
  }
  isWarm(key: string): boolean {
    return this.warm.has(key);
  }
  speaks(): boolean {
    return true;
  }
}

const q = (over: Partial<Queued> & { seq: number }): Queued => ({ priority: 0, tag: over.seq, enqueuedAt: over.seq, group: 'g', warmKey: undefined, particular: false, ...over });

t.test('the queue: serving order within a group, removal from the middle, groups and warm lists kept in step', async (t) => {
  const wq = new WaitQueue<Queued>();
  const a = wq.push(q({ seq: 1, tag: 3 }));
  const b = wq.push(q({ seq: 2, tag: 1 }));
  const c = wq.push(q({ seq: 3, tag: 1, priority: 1 }));
  const d = wq.push(q({ seq: 4, tag: 1 }));
  const g = [...wq.groups()][0]!;
  t.equal(g.heap[0], b, 'smallest tag first; class first (c is batch), then arrival among equal tags');
  t.ok(wq.remove(b));
  t.notOk(wq.remove(b), 'removing twice is a no-op');
  t.equal(g.heap[0], d);
  wq.remove(d);
  t.equal(g.heap[0], a, 'an interactive waiter before a batch one whatever the tags');
  wq.remove(a);
  t.equal(g.heap[0], c);
  wq.remove(c);
  t.equal(wq.size, 0);
  t.same([...wq.groups()], [], 'an empty group is dropped');
  const w1 = wq.push(q({ seq: 10, warmKey: 'm1', group: 'x' }));
  const w2 = wq.push(q({ seq: 11, warmKey: 'm2', group: 'y' }));
  const w3 = wq.push(q({ seq: 12, warmKey: 'm2', group: 'y', priority: 1 }));
  const head = wq.push(q({ seq: 9, warmKey: 'm3', group: 'z', enqueuedAt: 9 }));
  const pick = (until: number, maxPriority: number, warm: string[]) => wq.earliestWarm(until, maxPriority, (k) => warm.includes(k), () => true, head);
  t.equal(pick(100, 0, ['m2']), w2);
  t.equal(pick(100, 0, ['m1', 'm2']), w1, 'the earliest arrival among the warm lists');
  t.equal(pick(10.5, 0, ['m2']), undefined, 'nobody past the skew');
  t.equal(pick(100, 1, ['m2']), w2, 'for a batch head both classes count: the earliest arrival');
  wq.remove(w2);
  t.equal(pick(100, 0, ['m2']), undefined, 'batch waiters do not bend an interactive head');
  t.equal(pick(100, 1, ['m2']), w3);
  t.equal(wq.all().length, 3);
});

interface World {
  boxes: Box[];
  dispatcher: Dispatcher<Box> | ReferenceDispatcher<Box>;
  leases: Map<number, Lease<Box>>;
  cancels: Map<number, CancelToken>;
  log: string[];
}

function world(kind: 'new' | 'reference', spec: { slots: number[]; models: string[][] }, opts: { queueSize: number; warmFirst: boolean; warmSkewMs: number }): World {
  const boxes = spec.slots.map((s, i) => new Box(`b${i}`, s, spec.models[i]!));
  const dispatcher = kind === 'new' ? new Dispatcher<Box>(() => boxes, { maxWaitMs: 0, ...opts }) : new ReferenceDispatcher<Box>(() => boxes, { maxWaitMs: 0, ...opts });
  return { boxes, dispatcher, leases: new Map(), cancels: new Map(), log: [] };
}

t.test('property: the same answers as the linear-scan reference, on random sequences', async (t) => {
  const runs = Number(process.env['QUEUE_PROPERTY_RUNS'] ?? 60);
  let ops = 0;
  for (let run = 0; run < runs; run++) {
    const rnd = prng(1000 + run);
    const pick = <X>(xs: readonly X[]): X => xs[Math.floor(rnd() * xs.length)]!;
    const nBoxes = 1 + Math.floor(rnd() * 4);
    const models = ['m1', 'm2', 'm3'];
    const spec = {
      slots: Array.from({ length: nBoxes }, () => 1 + Math.floor(rnd() * 2)),
      models: Array.from({ length: nBoxes }, () => models.filter(() => rnd() < 0.6)),
    };
    const opts = { queueSize: 5 + Math.floor(rnd() * 40), warmFirst: rnd() < 0.6, warmSkewMs: rnd() < 0.5 ? 0 : 1e9 };
    const worlds = [world('new', spec, opts), world('reference', spec, opts)];
    let id = 0;
    for (let step = 0; step < 300; step++) {
      const r = rnd();
      if (r < 0.45) {
        const n = id++;
        const model = rnd() < 0.1 ? undefined : pick(models);
        const flow = pick(['k1', 'k2', 'k3', 'k4']);
        const weight = flow === 'k1' ? 2 : 1;
        const priority = flow === 'k4' ? 1 : 0;
        const runner = rnd() < 0.2 ? ',num_ctx=8192' : '';
        const excludeIdx = rnd() < 0.1 ? [Math.floor(rnd() * nBoxes)] : [];
        const flowQueueCap = rnd() < 0.2 ? 3 : undefined;
        for (const w of worlds) {
          const cancel = new CancelToken();
          w.cancels.set(n, cancel);
          const exclude = new Set(excludeIdx.map((i) => w.boxes[i]!));
          w.dispatcher
            .acquire({ cancel, model, warmKey: model === undefined ? undefined : model + runner, flow, weight, priority, flowQueueCap, ...(exclude.size > 0 ? { exclude } : {}) })
            .then(
              (lease) => {
                w.leases.set(n, lease);
                w.log.push(`${n}->${lease.backend.name}`);
              },
              (err: { code?: string }) => w.log.push(`${n}:${err.code}`),
            );
        }
      } else if (r < 0.75) {
        const held = [...worlds[0]!.leases.keys()];
        if (held.length === 0) continue;
        const n = pick(held);
        for (const w of worlds) {
          const lease = w.leases.get(n);
          w.leases.delete(n);
          lease?.release();
        }
      } else if (r < 0.87) {
        const n = Math.floor(rnd() * id);
        for (const w of worlds) w.cancels.get(n)?.cancel();
      } else if (r < 0.94) {
        const i = Math.floor(rnd() * nBoxes);
        const up = rnd() < 0.5;
        for (const w of worlds) {
          w.boxes[i]!.up = up;
          if (up) w.dispatcher.drain();
          else w.dispatcher.pruneStranded();
        }
      } else {
        const i = Math.floor(rnd() * nBoxes);
        const key = pick(models) + (rnd() < 0.3 ? ',num_ctx=8192' : '');
        for (const w of worlds) {
          w.boxes[i]!.warm.add(key);
          w.dispatcher.drain();
        }
      }
      ops++;
      await Promise.resolve();
      await Promise.resolve();
      const [a, b] = worlds;
      if (a!.log.join(' ') !== b!.log.join(' ') || a!.dispatcher.queueDepth !== b!.dispatcher.queueDepth || a!.boxes.some((x, i) => x.inFlight !== b!.boxes[i]!.inFlight)) {
        t.fail(`run ${run} step ${step}: new ${a!.log.slice(-8).join(' ')} / reference ${b!.log.slice(-8).join(' ')}`);
        return;
      }
    }
  }
  t.pass(`${runs} random runs, ${ops} operations: the same leases, refusals and queue as the reference`);
});

t.test('20,000 waiters at once: every one served, nothing left behind (the cost is the bench\'s to measure)', async (t) => {
  const boxes = [new Box('a', 1, ['m1', 'm2']), new Box('b', 1, ['m1']), new Box('c', 1, ['m2']), new Box('d', 1, ['m1', 'm2'])];
  const d = new Dispatcher<Box>(() => boxes, { queueSize: 1_000_000, maxWaitMs: 0, warmFirst: true, warmSkewMs: 2000 });
  const leases: Lease<Box>[] = [];
  let served = 0;
  const n = 20_000;
  for (let i = 0; i < n; i++) {
    void d.acquire({ model: i % 3 === 0 ? 'm2' : 'm1', warmKey: i % 3 === 0 ? 'm2' : 'm1', flow: `k${i % 7}` }).then((l) => {
      served++;
      leases.push(l);
    });
  }
  await Promise.resolve();
  t.equal(d.queueDepth, n - 4, 'four in slots, the rest waiting');
  while (served < n) {
    const batch = leases.splice(0);
    for (const l of batch) l.release();
    await Promise.resolve();
    await Promise.resolve();
  }
  t.equal(d.queueDepth, 0);
  t.equal(served, n, 'every waiter was served');
});
