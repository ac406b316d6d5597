// The wait queue, built so that handing out a slot costs O(log n) in the number of waiters, not
// a scan of all of them (issue 14). Waiters that can go to the same backends (one model, one
// API) form a group, each group a binary heap in serving order (priority class, then virtual
// finish tag, then arrival); a freed slot looks at each group's top once, so the cost grows with
// the number of models waited for and backends, never with the queue. A waiter with backends of
// its own it may not use (a retry after a failure) is kept apart and looked at one by one: there
// are few. For warm-first, waiters are also listed by model-and-runner and class in arrival
// order, so "the oldest waiter whose model is loaded there" is the head of a list. Removal from
// the middle (a client gone, a max wait run out) is O(log n) from the heap and O(1) from the lists.

/** What the queue needs to know of a waiter. */
export interface Queued {
  /** priority class, lower first */
  readonly priority: number;
  /** virtual finish time: within a class, smallest first (weighted fair queueing) */
  readonly tag: number;
  /** arrival order (ties of class and tag go to the earlier) */
  readonly seq: number;
  /** performance.now() at arrival */
  readonly enqueuedAt: number;
  /** waiters of one group can go to the same backends (their model and API) */
  readonly group: string;
  /** model and runner options, for warm-first; undefined: none */
  readonly warmKey: string | undefined;
  /** may not use some backends (it failed there): kept apart and looked at one by one */
  readonly particular: boolean;
}

/** Is `a` served before `b`? Its class, then its virtual finish time, then its arrival. */
export function ahead(a: Queued, b: Queued): boolean {
  if (a.priority !== b.priority) return a.priority < b.priority;
  if (a.tag !== b.tag) return a.tag < b.tag;
  return a.seq < b.seq;
}

export interface QueueEntry<W extends Queued> {
  readonly value: W;
  linked: boolean;
  /** where it sits in its group's heap (-1: particular) */
  heapAt: number;
  group: Group<W> | undefined;
  warm: WarmList<W> | undefined;
  warmPrev: QueueEntry<W> | undefined;
  warmNext: QueueEntry<W> | undefined;
}

export interface Group<W extends Queued> {
  readonly key: string;
  readonly heap: QueueEntry<W>[];
}

interface WarmList<W extends Queued> {
  readonly key: string;
  readonly priority: number;
  readonly warmKey: string;
  head: QueueEntry<W> | undefined;
  tail: QueueEntry<W> | undefined;
}

export class WaitQueue<W extends Queued> {
  private readonly groupsByKey = new Map<string, Group<W>>();
  private readonly particulars = new Set<QueueEntry<W>>();
  private readonly warmLists = new Map<string, WarmList<W>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  push(value: W): QueueEntry<W> {
    const e: QueueEntry<W> = { value, linked: true, heapAt: -1, group: undefined, warm: undefined, warmPrev: undefined, warmNext: undefined };
    if (value.particular) this.particulars.add(e);
    else {
      let g = this.groupsByKey.get(value.group);
      if (!g) {
        g = { key: value.group, heap: [] };
        this.groupsByKey.set(value.group, g);
      }
      e.group = g;
      e.heapAt = g.heap.length;
      g.heap.push(e);
      siftUp(g.heap, e.heapAt);
    }
    if (value.warmKey !== undefined) {
      const key = `${value.priority}\u0000${value.warmKey}`;
      let l = this.warmLists.get(key);
      if (!l) {
        l = { key, priority: value.priority, warmKey: value.warmKey, head: undefined, tail: undefined };
        this.warmLists.set(key, l);
      }
      e.warm = l;
      e.warmPrev = l.tail;
      if (l.tail) l.tail.warmNext = e;
      else l.head = e;
      l.tail = e;
    }
    this.count++;
    return e;
  }

  remove(e: QueueEntry<W>): boolean {
    if (!e.linked) return false;
    e.linked = false;
    this.count--;
    const g = e.group;
    if (g) {
      const heap = g.heap;
      const at = e.heapAt;
      const last = heap.pop()!;
      if (last !== e) {
        heap[at] = last;
        last.heapAt = at;
        siftDown(heap, at);
        siftUp(heap, last.heapAt);
      }
      if (heap.length === 0) this.groupsByKey.delete(g.key);
      e.group = undefined;
    } else {
      this.particulars.delete(e);
    }
    const l = e.warm;
    if (l) {
      if (e.warmPrev) e.warmPrev.warmNext = e.warmNext;
      else l.head = e.warmNext;
      if (e.warmNext) e.warmNext.warmPrev = e.warmPrev;
      else l.tail = e.warmPrev;
      if (!l.head) this.warmLists.delete(l.key);
      e.warm = e.warmPrev = e.warmNext = undefined;
    }
    return true;
  }

  /** Each group that has waiters: any of its waiters stands for all (they share their needs), and its top is served first. */
  groups(): IterableIterator<Group<W>> {
    return this.groupsByKey.values();
  }

  /** The waiters kept apart (each has backends of its own it may not use). */
  apart(): IterableIterator<QueueEntry<W>> {
    return this.particulars.values();
  }

  /** Every waiter, in no particular order (for evicting). */
  all(): QueueEntry<W>[] {
    const out: QueueEntry<W>[] = [...this.particulars];
    for (const g of this.groupsByKey.values()) out.push(...g.heap);
    return out;
  }

  /**
   * Warm-first's choice: the earliest arrival, other than `except`, of class `maxPriority` or
   * better, that arrived by `until`, whose model (and runner options) `isWarm` says is loaded,
   * and that `fits`. Cost: the warm lists (one per model waited for and class), and within one
   * only the waiters that do not fit are stepped over.
   */
  earliestWarm(until: number, maxPriority: number, isWarm: (warmKey: string) => boolean, fits: (w: W) => boolean, except: QueueEntry<W>): QueueEntry<W> | undefined {
    let best: QueueEntry<W> | undefined;
    for (const l of this.warmLists.values()) {
      if (l.priority > maxPriority || !isWarm(l.warmKey)) continue;
      for (let e = l.head; e; e = e.warmNext) {
        if (e.value.enqueuedAt > until || (best && best.value.seq < e.value.seq)) break;
        if (e === except || !fits(e.value)) continue;
        best = e;
        break;
      }
    }
    return best;
  }
}

function siftUp<W extends Queued>(heap: QueueEntry<W>[], at: number): void {
  const e = heap[at]!;
  while (at > 0) {
    const up = (at - 1) >> 1;
    const p = heap[up]!;
    if (!ahead(e.value, p.value)) break;
    heap[at] = p;
    p.heapAt = at;
    at = up;
  }
  heap[at] = e;
  e.heapAt = at;
}

function siftDown<W extends Queued>(heap: QueueEntry<W>[], at: number): void {
  const n = heap.length;
  const e = heap[at]!;
  for (;;) {
    const l = 2 * at + 1;
    if (l >= n) break;
    const r = l + 1;
    const c = r < n && ahead(heap[r]!.value, heap[l]!.value) ? r : l;
    const child = heap[c]!;
    if (!ahead(child.value, e.value)) break;
    heap[at] = child;
    child.heapAt = at;
    at = c;
  }
  heap[at] = e;
  e.heapAt = at;
}
