// The dispatcher: at most `slots` jobs in flight per backend, one bounded wait queue (served in
// priority class order, then weighted fair between keys, FIFO within a key), and
// work conservation: whenever a slot frees or a backend joins or recovers, the queue drains
// until every free slot is busy again (event-driven, no polling). Among free backends, round
// robin. A waiter leaves the queue when its max wait runs out (timer), when its client goes, or
// when no backend it could use is left in rotation. Handing out a slot costs O(log n) in the
// waiters (the queue's groups and heaps, wait-queue.ts), not a walk of the whole queue.
// With a fleet gate (several gateway instances sharing their backends through Redis), a slot
// this dispatcher picks is claimed fleet-wide before the job starts (fleet-gate.ts): a refused
// claim puts the job back in its place and the backend aside until a slot frees somewhere.
import type { Wire } from '../api-flavor.js';
import { GatewayError } from '../errors.js';
import type { Cancellation } from '../cancel.js';
import type { Claim, FleetGate } from './fleet-gate.js';
import { ahead, WaitQueue, type QueueEntry, type Queued } from './wait-queue.js';

/** What the dispatcher needs to know of a backend. */
export interface DispatchTarget {
  readonly name: string;
  inFlight: number;
  readonly slots: number;
  /** healthy and not leaving */
  readonly inRotation: boolean;
  /** backed off for a moment (it said it is busy): in rotation, but takes no new job */
  readonly paused?: boolean;
  /** holds this model (or may: its catalog is not known yet) */
  serves(model: string | undefined): boolean;
  /** has this model (with these runner options) loaded */
  isWarm(key: string): boolean;
  /** can answer this API (an OpenAI-compatible server answers only `/v1`) */
  speaks(api: Wire): boolean;
}

export interface Lease<T extends DispatchTarget> {
  readonly backend: T;
  /** milliseconds this job waited in the queue (0 when a slot was free) */
  readonly queuedMs: number;
  /** Give the slot back. Idempotent; call it in `finally`. */
  release(): void;
}

export interface AcquireOptions<T> {
  /** cancelled when the client goes away */
  readonly cancel?: Cancellation;
  /** backends this job has already failed on */
  readonly exclude?: ReadonlySet<T>;
  /** only backends that hold this model may take the job */
  readonly model?: string | undefined;
  /** model and runner options: a backend with this loaded is preferred */
  readonly warmKey?: string | undefined;
  /** which API the job speaks; only backends that answer it may take it (default: ollama) */
  readonly api?: Wire;
  /** who the job is for, for fair queueing (a key, or a key's user); default: one shared flow */
  readonly flow?: string;
  /** this flow's share: a flow of weight 2 gets twice the slots of weight 1 while both wait */
  readonly weight?: number;
  /** how many jobs this flow may have waiting (429 past it) */
  readonly flowQueueCap?: number | undefined;
  /** priority class: every waiting job of a lower number is served first (0 interactive, 1 batch) */
  readonly priority?: number;
}

/** What a job needs of a backend, beyond a free slot. */
interface Needs<T> {
  readonly exclude: ReadonlySet<T> | undefined;
  readonly model: string | undefined;
  readonly warmKey: string | undefined;
  readonly api: Wire;
}

export interface DispatcherOptions {
  /** how many jobs may wait; 0 means none may */
  readonly queueSize: number;
  /** 0 means wait without limit */
  readonly maxWaitMs: number;
  /** prefer backends that have the job's model loaded, and bend FIFO (by at most warmSkewMs) for it */
  readonly warmFirst?: boolean;
  readonly warmSkewMs?: number;
}

export type DispatchEvent = 'queued' | 'dequeued' | 'queue_full' | 'key_queue_full' | 'queue_timeout' | 'cancelled_queued' | 'no_healthy_backend';

interface Waiter<T extends DispatchTarget> extends Needs<T>, Queued {
  readonly flow: string;
  readonly weight: number;
  readonly flowQueueCap: number | undefined;
  /** its virtual finish tag (with a fleet gate: the fleet's, once it has a ticket) */
  tag: number;
  readonly resolve: (lease: Lease<T>) => void;
  readonly reject: (err: unknown) => void;
  timer: NodeJS.Timeout | undefined;
  cleanup: (() => void) | undefined;
  /** where it sits in the queue: undefined while its slot is being claimed, and once it left */
  node: QueueEntry<Waiter<T>> | undefined;
  /** a fleet-wide claim for it is under way */
  claiming: boolean;
  /** it ran out of time or lost its client while claiming: what to answer when the claim returns */
  gone: unknown;
  /** answered (served or evicted) */
  done: boolean;
  /** its place in the fleet's order (with a fleet gate) */
  ticket: string | undefined;
}

export class Dispatcher<T extends DispatchTarget> {
  private readonly queue = new WaitQueue<Waiter<T>>();
  private cursor = 0;
  private seq = 0;
  private closedWith: GatewayError | undefined;
  /** fair queueing: the tag of the last job served, and each flow's last tag and waiting count */
  private virtualTime = 0;
  private readonly flowTags = new Map<string, number>();
  private readonly flowWaiting = new Map<string, number>();
  private opts: DispatcherOptions;
  private readonly targets: () => readonly T[];
  private readonly onRelease: (backend: T) => void;
  private readonly listeners: ((e: DispatchEvent) => void)[] = [];
  /** counters for metrics and tests */
  readonly counts: Record<DispatchEvent, number> = {
    queued: 0,
    dequeued: 0,
    queue_full: 0,
    key_queue_full: 0,
    queue_timeout: 0,
    cancelled_queued: 0,
    no_healthy_backend: 0,
  };

  private readonly onLease: (backend: T, warmKey: string | undefined) => void;
  /** several instances sharing the fleet: slots claimed fleet-wide (undefined: this process alone) */
  private readonly gate: FleetGate<T> | undefined;
  /** backends whose claim was refused, set aside until a slot frees (or the retry time passes) */
  private readonly blocked = new Map<T, NodeJS.Timeout>();
  /** waiters by their fleet ticket */
  private readonly tickets = new Map<string, Waiter<T>>();
  /** slots heard freed at each backend: a refusal that crossed a release is not believed */
  private readonly freedAt = new Map<T, number>();

  constructor(
    targets: () => readonly T[],
    opts: DispatcherOptions,
    onRelease: (backend: T) => void = () => {},
    onLease: (backend: T, warmKey: string | undefined) => void = () => {},
    gate?: FleetGate<T>,
  ) {
    this.targets = targets;
    this.opts = opts;
    this.onRelease = onRelease;
    this.onLease = onLease;
    this.gate = gate;
    gate?.onGranted((b, ticket, leaseId) => this.granted(b, ticket, leaseId));
    gate?.onFreed((b) => {
      if (b === undefined) this.rejoin();
      else {
        this.freedAt.set(b, (this.freedAt.get(b) ?? 0) + 1);
        this.unblock(b);
      }
      this.drain();
    });
  }

  /** Hear every dispatch event as it happens (metrics, benchmarks). */
  on(listener: (e: DispatchEvent) => void): void {
    this.listeners.push(listener);
  }

  private count(e: DispatchEvent): void {
    this.counts[e]++;
    for (const l of this.listeners) l(e);
  }

  get queueDepth(): number {
    return this.queue.size;
  }

  /** How many jobs each flow has waiting (flows with none are absent). */
  get waitingByFlow(): ReadonlyMap<string, number> {
    return this.flowWaiting;
  }

  get queueSize(): number {
    return this.opts.queueSize;
  }

  /** A reload: new bounds apply to new waiters; nobody already waiting is evicted by it. */
  configure(opts: DispatcherOptions): void {
    this.opts = opts;
    this.drain();
  }

  /** Resolve with a lease on a free slot, now or after a wait in the queue. */
  acquire(options: AcquireOptions<T> = {}): Promise<Lease<T>> {
    const { cancel, exclude, model, warmKey } = options;
    const needs: Needs<T> = { exclude, model, warmKey, api: options.api ?? 'ollama' };
    if (cancel?.aborted) return Promise.reject(clientClosed());
    if (this.closedWith) return Promise.reject(this.closedWith);
    if (!this.anyInRotation(needs)) {
      this.count('no_healthy_backend');
      return Promise.reject(new GatewayError('no_healthy_backend', model === undefined ? 'no healthy backend' : `no healthy backend has model '${model}'`));
    }
    // a job may only jump ahead of waiters when nobody is waiting (FIFO), or when every waiter
    // is barred from the free backend (they would not take it anyway)
    const free = this.queue.size === 0 ? this.pick(needs, true) : undefined;
    if (free) return this.gate ? this.claimFirst(free, needs, options) : Promise.resolve(this.lease(free, 0, warmKey, undefined));
    return this.wait(needs, options);
  }

  /** With a fleet gate, a job that found a free slot here claims it fleet-wide before it starts; refused, it waits. */
  private async claimFirst(b: T, needs: Needs<T>, options: AcquireOptions<T>): Promise<Lease<T>> {
    const gate = this.gate!;
    const heard = this.freedAt.get(b) ?? 0;
    b.inFlight++;
    let claim: Claim;
    try {
      claim = await gate.claim(b);
    } finally {
      b.inFlight--;
    }
    if (claim.granted) {
      if (options.cancel?.aborted) {
        this.handOff(b, claim.leaseId);
        throw clientClosed();
      }
      return this.lease(b, 0, needs.warmKey, claim.leaseId);
    }
    this.refused(b, claim.retryMs, heard);
    if (this.closedWith) throw this.closedWith;
    return this.wait(needs, options);
  }

  /** Put a job in the queue (429 or 503 when it is full), to be handed a slot by drain(). */
  private wait(needs: Needs<T>, options: AcquireOptions<T>): Promise<Lease<T>> {
    const { cancel, exclude, model } = options;
    if (this.queue.size >= this.opts.queueSize) {
      this.count('queue_full');
      return Promise.reject(new GatewayError('queue_full', `server busy: all slots in use and the wait queue is full (${this.opts.queueSize})`));
    }
    const flow = options.flow ?? '';
    const waiting = this.flowWaiting.get(flow) ?? 0;
    if (options.flowQueueCap !== undefined && waiting >= options.flowQueueCap) {
      this.count('key_queue_full');
      return Promise.reject(new GatewayError('key_queue_full', `'${flow}' already has ${waiting} job(s) waiting, its limit`));
    }
    const weight = Math.max(options.weight ?? 1, 1e-6);
    // a flow that waited nothing lately starts level with the job being served now; with a fleet
    // gate the fleet gives the tag (until it answers, the newest waiter is last)
    const tag = this.gate ? Infinity : Math.max(this.virtualTime, this.flowTags.get(flow) ?? 0) + 1 / weight;
    if (!this.gate) this.flowTags.set(flow, tag);
    this.flowWaiting.set(flow, waiting + 1);
    return new Promise<Lease<T>>((resolve, reject) => {
      const waiter: Waiter<T> = {
        ...needs,
        flow,
        weight,
        flowQueueCap: options.flowQueueCap,
        priority: options.priority ?? 0,
        tag,
        seq: this.seq++,
        enqueuedAt: performance.now(),
        group: `${needs.api}\u0000${model ?? '\u0001'}`,
        particular: exclude !== undefined && exclude.size > 0,
        resolve,
        reject,
        timer: undefined,
        cleanup: undefined,
        node: undefined,
        claiming: false,
        gone: undefined,
        done: false,
        ticket: undefined,
      };
      waiter.node = this.queue.push(waiter);
      this.count('queued');
      if (this.opts.maxWaitMs > 0) {
        waiter.timer = setTimeout(() => {
          this.count('queue_timeout');
          this.evict(waiter, new GatewayError('queue_timeout', `no slot became free within the maximum queue wait (${this.opts.maxWaitMs / 1000} s)`));
        }, this.opts.maxWaitMs);
      }
      if (cancel) {
        waiter.cleanup = cancel.onCancel(() => {
          this.count('cancelled_queued');
          this.evict(waiter, clientClosed());
        });
      }
      // a waiter kept apart (a retry) is not in the fleet's order: it takes what this instance frees
      if (this.gate && !waiter.particular) this.register(waiter);
      // with nobody ahead of it and a free slot it could take, a waiter never waits
      this.drain();
    });
  }

  /** Give a waiter its place in the fleet's order. */
  private register(w: Waiter<T>): void {
    const fleet = { flow: w.flow, weight: w.weight, priority: w.priority, api: w.api, model: w.model, queueSize: this.opts.queueSize, flowQueueCap: w.flowQueueCap };
    void this.gate!.enqueue(fleet).then((r) => {
      if (!r) return;
      if ('refused' in r) {
        // the fleet's queue (all instances together) has no room for it
        if (r.refused === 'queue_full') {
          this.count('queue_full');
          this.evict(w, new GatewayError('queue_full', `server busy: all slots in use and the wait queue is full (${this.opts.queueSize})`));
        } else {
          this.count('key_queue_full');
          this.evict(w, new GatewayError('key_queue_full', `'${w.flow}' already has ${r.waiting} job(s) waiting, its limit`));
        }
        return;
      }
      if (w.done) return this.gate!.leave(r.ticket);
      w.ticket = r.ticket;
      this.tickets.set(r.ticket, w);
      if (w.node) {
        this.queue.remove(w.node);
        w.tag = r.tag;
        w.node = this.queue.push(w);
      } else w.tag = r.tag;
    });
  }

  /** The fleet's state came back (perhaps empty): every waiter takes a place in its order again. */
  private rejoin(): void {
    for (const e of this.queue.all().sort((a, b) => a.value.seq - b.value.seq)) {
      const w = e.value;
      if (w.particular) continue;
      if (w.ticket !== undefined) {
        this.gate!.leave(w.ticket);
        this.tickets.delete(w.ticket);
        w.ticket = undefined;
      }
      this.register(w);
    }
    for (const t of this.blocked.values()) clearTimeout(t);
    this.blocked.clear();
  }

  /**
   * A claim was refused: the backend takes nothing from here until a slot frees there, or `ms`
   * pass; unless a slot was heard freed there while the claim was out (the release and the
   * refusal crossed: the next drain claims again).
   */
  private refused(b: T, ms: number, heard: number): void {
    if ((this.freedAt.get(b) ?? 0) === heard) this.block(b, ms);
  }

  private block(b: T, ms: number): void {
    const had = this.blocked.get(b);
    if (had) clearTimeout(had);
    const t = setTimeout(() => {
      this.blocked.delete(b);
      this.drain();
    }, Math.max(1, ms));
    t.unref();
    this.blocked.set(b, t);
  }

  private unblock(b: T): void {
    const t = this.blocked.get(b);
    if (t === undefined) return;
    clearTimeout(t);
    this.blocked.delete(b);
  }

  /** Claim `b`'s slot fleet-wide for the waiter drain() chose; it leaves the queue meanwhile. */
  private claimFor(w: Waiter<T>, b: T): void {
    this.queue.remove(w.node!);
    w.node = undefined;
    w.claiming = true;
    const heard = this.freedAt.get(b) ?? 0;
    b.inFlight++;
    void this.gate!.claim(b).then(
      (c) => {
        b.inFlight--;
        this.claimed(w, b, c, heard);
      },
      () => {
        b.inFlight--;
        this.claimed(w, b, { granted: false, reason: 'full', retryMs: 100 }, heard);
      },
    );
  }

  private claimed(w: Waiter<T>, b: T, c: Claim, heard: number): void {
    w.claiming = false;
    if (c.granted) {
      if (c.ticket !== '') this.consumed(c.ticket, w);
      if (w.gone !== undefined || this.closedWith) {
        this.handOff(b, c.leaseId);
        this.finish(w);
        w.reject(w.gone ?? this.closedWith);
        return;
      }
      this.finish(w);
      this.count('dequeued');
      w.resolve(this.lease(b, performance.now() - w.enqueuedAt, w.warmKey, c.leaseId));
      return;
    }
    this.refused(b, c.retryMs, heard);
    if (w.gone !== undefined || this.closedWith) {
      this.finish(w);
      w.reject(w.gone ?? this.closedWith);
    } else {
      // back in its place: the same class, tag and arrival
      w.node = this.queue.push(w);
    }
    this.drain();
  }

  /**
   * Give a fleet slot back: the fleet hands it on to the first job waiting for that backend,
   * wherever it waits. Until it has said to whom, this instance claims nothing there.
   */
  private handOff(b: T, leaseId: string): void {
    this.block(b, 1_000);
    void this.gate!.release(b, leaseId).then(
      (h) => {
        if (h.to === 'other') return; // set aside until a slot frees there
        this.unblock(b);
        if (h.to === 'here') this.granted(b, h.ticket, h.leaseId);
        this.drain();
      },
      () => {
        this.unblock(b);
        this.drain();
      },
    );
  }

  /**
   * A slot of `b` was handed to this instance for the waiter holding `ticket`: it goes to that
   * waiter, or (gone, or busy claiming elsewhere) to the first one here that can use `b`; with
   * none, it is handed on.
   */
  private granted(b: T, ticket: string, leaseId: string): void {
    let w = this.tickets.get(ticket);
    if (!w || w.done || w.claiming || !w.node || !this.fits(b, w)) w = this.firstFor(b);
    if (!w || this.closedWith) {
      this.consumed(ticket, undefined);
      this.handOff(b, leaseId);
      return;
    }
    this.consumed(ticket, w);
    this.queue.remove(w.node!);
    w.node = undefined;
    this.finish(w);
    this.count('dequeued');
    w.resolve(this.lease(b, performance.now() - w.enqueuedAt, w.warmKey, leaseId));
  }

  /** The waiter served first (class, tag, arrival) among those that may use `b`. */
  private firstFor(b: T): Waiter<T> | undefined {
    return this.first((w) => this.fits(b, w))?.value;
  }

  /**
   * The waiter served first (priority class, then smallest tag, ties to the earlier arrival)
   * among those `ok` accepts. Each group's top stands for the group: its waiters share their needs.
   */
  private first(ok: (w: Waiter<T>) => boolean): QueueEntry<Waiter<T>> | undefined {
    let head: QueueEntry<Waiter<T>> | undefined;
    for (const g of this.queue.groups()) {
      const top = g.heap[0]!;
      if (head && !ahead(top.value, head.value)) continue;
      if (ok(top.value)) head = top;
    }
    for (const e of this.queue.apart()) {
      if (head && !ahead(e.value, head.value)) continue;
      if (ok(e.value)) head = e;
    }
    return head;
  }

  /**
   * A grant consumed the fleet's head ticket, which is this instance's. Mostly it is the
   * waiter's own; when it is another waiter's here, that one takes over the served waiter's
   * ticket, so each waiter still holds one place in the fleet's order.
   */
  private consumed(ticket: string, served: Waiter<T> | undefined): void {
    const owner = this.tickets.get(ticket);
    this.tickets.delete(ticket);
    if (owner === undefined || owner === served) {
      if (served?.ticket === ticket) served.ticket = undefined;
      return;
    }
    owner.ticket = undefined;
    if (served?.ticket !== undefined) {
      owner.ticket = served.ticket;
      this.tickets.set(served.ticket, owner);
      served.ticket = undefined;
    } else if (!owner.done) this.register(owner);
  }


  /**
   * A backend for a request that takes no slot (pass-through routes, `/api/show`): the next one
   * in rotation that may take it, by the same choice as a slotted job's, busy or not.
   */
  pass(options: AcquireOptions<T> = {}): Lease<T> {
    const needs: Needs<T> = { exclude: options.exclude, model: options.model, warmKey: undefined, api: options.api ?? 'ollama' };
    const b = this.pick(needs, false);
    if (!b) throw new GatewayError('no_healthy_backend', 'no healthy backend');
    return { backend: b, queuedMs: 0, release: () => {} };
  }

  /** Could a backend in rotation (other than those excluded) take this job, now or later? */
  canServe(options: AcquireOptions<T>): boolean {
    return this.anyInRotation({ exclude: options.exclude, model: options.model, warmKey: undefined, api: options.api ?? 'ollama' });
  }

  /**
   * Hand free slots to waiters, oldest first, until no free slot is left that any waiter may
   * use. Called whenever a slot frees or a backend joins, recovers or grows. With warm-first, a
   * slot on a backend that has some waiter's model loaded may go to that waiter ahead of an older
   * one whose model is not loaded there, if it arrived at most `warmSkewMs` later: FIFO bends a
   * little, never more, so nobody starves.
   */
  drain(): void {
    const takable = (w: Waiter<T>) => this.pickFreeQuiet(w) !== undefined;
    while (this.queue.size > 0 && this.anyFree()) {
      // the waiter of the first priority class, then with the smallest tag, that some free
      // backend can take (FIFO within a flow, weighted fair between flows); ties go to the
      // earlier arrival. Each group's top stands for the group: its waiters share their needs.
      const head = this.first(takable);
      if (!head) return;
      const b = this.pick(head.value, true)!;
      if (!this.gate) this.virtualTime = Math.max(this.virtualTime, head.value.tag);
      const chosen = this.opts.warmFirst ? this.warmerWaiter(head, b) : head;
      const w = chosen.value;
      if (this.gate) {
        this.claimFor(w, b);
        continue;
      }
      this.queue.remove(chosen);
      w.node = undefined;
      this.finish(w);
      this.count('dequeued');
      w.resolve(this.lease(b, performance.now() - w.enqueuedAt, w.warmKey, undefined));
    }
  }

  private warmerWaiter(head: QueueEntry<Waiter<T>>, b: T): QueueEntry<Waiter<T>> {
    const h = head.value;
    if (h.warmKey === undefined || b.isWarm(h.warmKey)) return head;
    const until = h.enqueuedAt + (this.opts.warmSkewMs ?? 0);
    return this.queue.earliestWarm(until, h.priority, (k) => b.isWarm(k), (w) => this.fits(b, w), head) ?? head;
  }

  /**
   * A backend left rotation: waiters that have nowhere left to go are answered now rather than
   * at their max wait.
   */
  pruneStranded(): void {
    const stranded: QueueEntry<Waiter<T>>[] = [];
    for (const g of this.queue.groups()) if (!this.anyInRotation(g.heap[0]!.value)) stranded.push(...g.heap);
    for (const e of this.queue.apart()) if (!this.anyInRotation(e.value)) stranded.push(e);
    // in arrival order, as a scan of one FIFO would answer them
    stranded.sort((a, b) => a.value.seq - b.value.seq);
    for (const e of stranded) {
      this.count('no_healthy_backend');
      this.evict(e.value, new GatewayError('no_healthy_backend', 'no healthy backend'));
    }
  }

  /** Shutdown: every waiter, and every job that comes later, is answered with `err`. */
  close(err: GatewayError): void {
    this.closedWith = err;
    for (const e of this.queue.all().sort((a, b) => a.value.seq - b.value.seq)) this.evict(e.value, err);
  }

  /** A waiter leaves unserved (its max wait, its client gone, nowhere to go, shutdown). */
  private evict(w: Waiter<T>, err: unknown): void {
    if (w.done) return;
    if (w.claiming) {
      // its claim is out: it is answered when the claim returns (a granted slot goes back)
      w.gone ??= err;
      return;
    }
    if (!w.node) return;
    this.queue.remove(w.node);
    w.node = undefined;
    this.finish(w);
    w.reject(err);
  }

  /** A waiter is out of the queue for good: its flow's count, timers and fleet ticket go. */
  private finish(w: Waiter<T>): void {
    w.done = true;
    const left = (this.flowWaiting.get(w.flow) ?? 1) - 1;
    if (left > 0) this.flowWaiting.set(w.flow, left);
    else {
      this.flowWaiting.delete(w.flow);
      // a flow with nothing waiting and no lead to keep starts from the virtual time anyway
      if ((this.flowTags.get(w.flow) ?? 0) <= this.virtualTime) this.flowTags.delete(w.flow);
    }
    if (w.timer) clearTimeout(w.timer);
    w.cleanup?.();
    if (w.ticket !== undefined) {
      this.tickets.delete(w.ticket);
      this.gate!.leave(w.ticket);
      w.ticket = undefined;
    }
  }

  private lease(b: T, queuedMs: number, warmKey: string | undefined, fleetLease: string | undefined): Lease<T> {
    b.inFlight++;
    this.onLease(b, warmKey);
    let released = false;
    return {
      backend: b,
      queuedMs,
      release: () => {
        if (released) return;
        released = true;
        b.inFlight--;
        if (fleetLease !== undefined) this.handOff(b, fleetLease);
        this.onRelease(b);
        this.drain();
      },
    };
  }

  /** A free slot here (this instance's share of it, with a fleet gate), not backed off, not set aside after a refused claim. */
  private hasRoom(b: T): boolean {
    return b.inFlight < (this.gate ? this.gate.cap(b) : b.slots) && b.paused !== true && (this.blocked.size === 0 || !this.blocked.has(b));
  }

  private anyFree(): boolean {
    for (const b of this.targets()) if (b.inRotation && this.hasRoom(b)) return true;
    return false;
  }

  /** In rotation, not already failed for this job, holds its model, speaks its API. */
  private fits(b: T, n: Needs<T>): boolean {
    return b.inRotation && !n.exclude?.has(b) && b.speaks(n.api) && b.serves(n.model);
  }

  private anyInRotation(n: Needs<T>): boolean {
    for (const b of this.targets()) if (this.fits(b, n)) return true;
    return false;
  }

  /** Is there a free backend this job may use? (Moves no round-robin cursor.) */
  private pickFreeQuiet(needs: Needs<T>): T | undefined {
    for (const b of this.targets()) if (this.hasRoom(b) && this.fits(b, needs)) return b;
    return undefined;
  }

  /**
   * A backend in rotation that this job may use (`slotted`: with a free slot): with warm-first,
   * one that has its model loaded if any does; otherwise round robin.
   */
  private pick(needs: Needs<T>, slotted: boolean): T | undefined {
    const list = this.targets();
    const n = list.length;
    let first: number | undefined;
    for (let i = 0; i < n; i++) {
      const idx = (this.cursor + i) % n;
      const b = list[idx]!;
      if ((slotted && !this.hasRoom(b)) || !this.fits(b, needs)) continue;
      if (!this.opts.warmFirst || needs.warmKey === undefined || b.isWarm(needs.warmKey)) {
        this.cursor = (idx + 1) % n;
        return b;
      }
      first ??= idx;
    }
    if (first === undefined) return undefined;
    this.cursor = (first + 1) % n;
    return list[first];
  }
}

function clientClosed(): GatewayError {
  return new GatewayError('client_closed', 'client closed the request');
}
