// What the dispatcher asks of a fleet of gateway instances that share their backends' slots and
// one queue order (shared state in Redis, src/shared/). Without one, the dispatcher counts slots
// in this process alone. With one, a job this instance would start must first claim its slot
// fleet-wide: the claim is granted when the backend has a slot free across all instances and no
// job waiting at another instance is ahead of it.
import type { Wire } from '../api-flavor.js';

/** A waiting job as the fleet orders it. */
export interface FleetWaiter {
  readonly flow: string;
  readonly weight: number;
  readonly priority: number;
  readonly api: Wire;
  readonly model: string | undefined;
  /** the fleet's bound on waiting jobs (`queue.size`, all instances together) */
  readonly queueSize: number;
  /** how many jobs its flow may have waiting fleet-wide (a key's `max_queued`) */
  readonly flowQueueCap: number | undefined;
}

/** A waiter's place in the fleet's order, or why the fleet has no room for it. */
export type Enqueued = { readonly ticket: string; readonly tag: number } | { readonly refused: 'queue_full' | 'key_queue_full'; readonly waiting: number };

export type Claim =
  /** the slot is this job's; `ticket`: the fleet's head ticket it consumed (this instance's), '' none */
  | { readonly granted: true; readonly leaseId: string; readonly ticket: string }
  /** `full`: no slot free fleet-wide; `turn`: a job waiting at another instance comes first */
  | { readonly granted: false; readonly reason: 'full' | 'turn'; readonly retryMs: number };

export type Handoff = { readonly to: 'nobody' | 'other' } | { readonly to: 'here'; readonly ticket: string; readonly leaseId: string };

export interface FleetGate<T> {
  /** the most jobs this instance may run at `b`: all its slots while the fleet is reachable, its share when not */
  cap(b: T): number;
  /** Claim one of `b`'s slots fleet-wide for a job of this instance (never rejects: an unreachable fleet grants within this instance's share). */
  claim(b: T): Promise<Claim>;
  /**
   * Give a claimed slot back. The fleet hands it at once to the first waiting job that backend
   * can serve: one of this instance's (`here`: resolve it with the new lease), another
   * instance's (`other`: told on its own channel), or nobody (the slot is free; every instance
   * hears so).
   */
  release(b: T, leaseId: string): Promise<Handoff>;
  /** Hear a slot another instance handed to one of this instance's waiting jobs (by its ticket). */
  onGranted(listener: (b: T, ticket: string, leaseId: string) => void): void;
  /** Put a waiting job in the fleet's order: its ticket and its virtual finish tag there (undefined: the fleet is unreachable). */
  enqueue(w: FleetWaiter): Promise<Enqueued | undefined>;
  /** A waiting job left (served locally without its ticket, evicted, or its client went). */
  leave(ticket: string): void;
  /** Hear when a slot frees at one of the fleet's backends (`undefined`: the fleet came back: look at everything again). */
  onFreed(listener: (b: T | undefined) => void): void;
}
