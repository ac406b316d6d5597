// Slots and queue order shared by a fleet of gateway instances, in Redis (the dispatcher's fleet
// gate, src/dispatch/fleet-gate.ts).
//
// - A backend's slots are a hash of leases (lease id -> expiry, Redis's clock). A claim, in one
//   Lua script, drops expired leases and takes one if fewer than `slots` are held. The holder
//   renews its leases at every heartbeat; an instance that dies (SIGKILL, power loss) frees its
//   slots when they expire, never earlier. A release deletes the lease and, in the same script,
//   hands the slot to the first waiting job that backend can serve (a lease written for it, its
//   instance told on its `grant:<instance>` channel); with nobody waiting it publishes the
//   backend on the `freed` channel, so every instance hears of it at once.
// - Waiting jobs are tickets in one sorted set per priority class, scored by their virtual finish
//   tag (weighted fair queueing between flows, the fleet's virtual time and flow tags kept in
//   Redis too), ties in arrival order. A claim for a free slot is granted only to the instance
//   whose ticket is the first that backend can serve; another instance is told to wait its
//   turn, and a turn not taken within a grace time passes on (an instance that holds a ticket
//   but cannot use the slot must not stall the fleet). Tickets of dead instances are dropped.
// - While Redis is unreachable each instance runs at most its share of each backend's slots
//   (slots / instances alive when last seen, at least 1); for the first lease time of an outage
//   also no more than the slots the other instances left free when last seen (their jobs then
//   may still run). When Redis answers again (it may have restarted empty) each instance
//   re-asserts its leases and tickets, and keeps to its share for one lease time more, while
//   the others re-assert theirs.
import type { Backend } from '../backends/backend.js';
import type { Claim, Enqueued, FleetGate, FleetWaiter, Handoff } from '../dispatch/fleet-gate.js';
import { modelKey } from '../models/name.js';
import type { SharedState } from './connection.js';

// Shared by the claim and the release: KEYS are the backend's slots, queue:0, queue:1, the
// virtual time, the backend's turn, the waiting count per flow and the flow tags; ARGV[1..7] the backend's
// slots, the lease time, this instance, a lease id, the instances' key prefix, the APIs the
// backend speaks and how its models are spelled ('*': any).
const SLOT_COMMON = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- leases held (expired ones dropped), and the soonest to run out
local function live()
  local held = redis.call('HGETALL', KEYS[1])
  local n, soonest = 0, nil
  for i = 1, #held, 2 do
    local e = tonumber(held[i + 1])
    if e <= now then redis.call('HDEL', KEYS[1], held[i])
    else
      n = n + 1
      if soonest == nil or e < soonest then soonest = e end
    end
  end
  return n, soonest
end
-- the first waiting ticket this backend can serve (tickets of dead instances dropped); a turn
-- given to another instance that it did not take by its deadline is passed over
local function first(modelsFrom, turn)
  local apis = {}
  for a in string.gmatch(ARGV[6], '[^,]+') do apis[a] = true end
  local mode = ARGV[7]
  local models = {}
  for i = modelsFrom, #ARGV do models[ARGV[i]] = true end
  for q = 2, 3 do
    local list = redis.call('ZRANGE', KEYS[q], 0, 255, 'WITHSCORES')
    for i = 1, #list, 2 do
      local m = list[i]
      local _, _, inst, flow, api, okey, raw = string.find(m, '^[^|]*|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$')
      if inst == nil or redis.call('EXISTS', ARGV[5] .. inst) == 0 then
        redis.call('ZREM', KEYS[q], m)
        if flow and redis.call('HINCRBY', KEYS[6], flow, -1) <= 0 then redis.call('HDEL', KEYS[6], flow) end
      elseif apis[api] and (mode == '*' or raw == '' or (mode == 'ollama' and models[okey]) or (mode == 'openai' and models[raw])) then
        local passed = false
        if turn and inst ~= ARGV[3] then
          local _, _, tm, deadline = string.find(turn, '^(.*)#(%d+)$')
          if tm == m and tonumber(deadline) < now then passed = true end
        end
        if not passed then return m, q, list[i + 1], inst end
      end
    end
  end
  return nil
end
-- the ticket leaves the queue: its flow waits one job less, and the fleet's virtual time moves on
local function take(m, q, score)
  redis.call('ZREM', KEYS[q], m)
  local _, _, flow = string.find(m, '^[^|]*|[^|]*|([^|]*)|')
  local idle = redis.call('HINCRBY', KEYS[6], flow, -1) <= 0
  if idle then redis.call('HDEL', KEYS[6], flow) end
  local vt = tonumber(redis.call('GET', KEYS[4]) or '0')
  if tonumber(score) > vt then
    vt = tonumber(score)
    redis.call('SET', KEYS[4], score)
  end
  -- (as one gateway's dispatcher does) a flow with nothing waiting and no lead to keep starts
  -- from the virtual time anyway: its tag goes, so the hash holds only flows that matter
  if idle and tonumber(redis.call('HGET', KEYS[7], flow) or '0') <= vt then redis.call('HDEL', KEYS[7], flow) end
end
local function lease(id)
  redis.call('HSET', KEYS[1], id, now + tonumber(ARGV[2]))
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
end
`;

/** ARGV[8]: grace ms, ARGV[9..]: models. Returns {1, ticket@held} granted, {0, ms} full, {2, ms} another's turn. */
const CLAIM = `${SLOT_COMMON}
local n, soonest = live()
if n >= tonumber(ARGV[1]) then return {0, tostring(soonest - now)} end
local turn = redis.call('GET', KEYS[5])
local head, q, score, owner = first(9, turn)
if head and owner ~= ARGV[3] then
  local grace = tonumber(ARGV[8])
  if not turn or string.sub(turn, 1, #head + 1) ~= head .. '#' then
    redis.call('SET', KEYS[5], head .. '#' .. (now + grace), 'PX', grace * 4)
  end
  return {2, tostring(grace)}
end
if head then take(head, q, score) end
lease(ARGV[4])
if head then return {1, tostring(q - 2) .. '#' .. head .. '@' .. n} end
return {1, '@' .. n}
`;

/**
 * A slot given back (ARGV[4] the lease) goes straight to the first waiting ticket that backend
 * can serve, whichever instance it waits at: a lease is written for it and its instance told on
 * its grant channel (ARGV[8] the channel prefix, ARGV[9] the backend). With nobody waiting, the
 * backend is published freed. Returns {ticket, lease, owner}, or {''}.
 */
const RELEASE = `${SLOT_COMMON}
redis.call('HDEL', KEYS[1], ARGV[4])
local n = live()
if n >= tonumber(ARGV[1]) then return {''} end
local head, q, score, owner = first(10, nil)
if not head then
  redis.call('PUBLISH', ARGV[8] .. 'freed', ARGV[9])
  return {''}
end
take(head, q, score)
local id = owner .. ':t' .. string.sub(head, 1, 15)
lease(id)
local ticket = tostring(q - 2) .. '#' .. head
if owner ~= ARGV[3] then redis.call('PUBLISH', ARGV[8] .. 'grant:' .. owner, ARGV[9] .. '\\n' .. ticket .. '\\n' .. id) end
return {ticket, id, owner}
`;

/**
 * KEYS: queue of the class, flow tags, virtual time, sequence, waiting per flow, the other
 * class's queue. ARGV: flow, weight, instance, api, model key, model, queue size, flow cap|''.
 * Returns {member, tag}, or {'full'} / {'flow_full', waiting} past the fleet's bounds.
 */
const ENQUEUE = `
if redis.call('ZCARD', KEYS[1]) + redis.call('ZCARD', KEYS[6]) >= tonumber(ARGV[7]) then return {'full', ''} end
local waiting = tonumber(redis.call('HGET', KEYS[5], ARGV[1]) or '0')
local cap = tonumber(ARGV[8])
if cap and waiting >= cap then return {'flow_full', tostring(waiting)} end
redis.call('HINCRBY', KEYS[5], ARGV[1], 1)
local vt = tonumber(redis.call('GET', KEYS[3]) or '0')
local ft = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local tag = string.format('%.17g', math.max(vt, ft) + 1 / tonumber(ARGV[2]))
redis.call('HSET', KEYS[2], ARGV[1], tag)
local seq = redis.call('INCR', KEYS[4])
local m = string.format('%015d', seq) .. '|' .. ARGV[3] .. '|' .. ARGV[1] .. '|' .. ARGV[4] .. '|' .. ARGV[5] .. '|' .. ARGV[6]
redis.call('ZADD', KEYS[1], tag, m)
return {m, tag}
`;

/** A flow whose last ticket went: its tag goes too unless it still leads the virtual time. KEYS[w] waiting, KEYS[t] flow tags, KEYS[v] virtual time. */
const flowLeft = (w: number, t: number, v: number) => `
local function flowLeft(flow)
  if redis.call('HINCRBY', KEYS[${w}], flow, -1) > 0 then return end
  redis.call('HDEL', KEYS[${w}], flow)
  if tonumber(redis.call('HGET', KEYS[${t}], flow) or '0') <= tonumber(redis.call('GET', KEYS[${v}]) or '0') then redis.call('HDEL', KEYS[${t}], flow) end
end
`;

/** KEYS: queue, waiting per flow, flow tags, virtual time. ARGV: member: a waiter left. */
const LEAVE = `${flowLeft(2, 3, 4)}
if redis.call('ZREM', KEYS[1], ARGV[1]) == 1 then
  local _, _, flow = string.find(ARGV[1], '^[^|]*|[^|]*|([^|]*)|')
  if flow then flowLeft(flow) end
end
return 1
`;

/** KEYS: queue:0, queue:1, waiting per flow, flow tags, virtual time. ARGV: instance: every ticket of this instance goes (it re-registers its waiters). */
const FORGET = `${flowLeft(3, 4, 5)}
for q = 1, 2 do
  local all = redis.call('ZRANGE', KEYS[q], 0, -1)
  for _, m in ipairs(all) do
    local _, _, inst, flow = string.find(m, '^[^|]*|([^|]*)|([^|]*)|')
    if inst == ARGV[1] then
      redis.call('ZREM', KEYS[q], m)
      flowLeft(flow)
    end
  end
end
return 1
`;

/** KEYS: slots hash. ARGV: lease ms, lease ids...: (re)writes this instance's leases with a fresh expiry; returns the leases held. */
const RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
for i = 2, #ARGV do redis.call('HSET', KEYS[1], ARGV[i], now + tonumber(ARGV[1])) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]) * 2)
return redis.call('HLEN', KEYS[1])
`;

type Reply = [number | string, string];

interface SlotCommands {
  ogwClaim(...args: (string | number)[]): Promise<Reply>;
  ogwRelease(...args: (string | number)[]): Promise<string[]>;
  ogwEnqueue(...args: (string | number)[]): Promise<Reply>;
  ogwRenew(...args: (string | number)[]): Promise<number>;
  ogwLeave(...args: (string | number)[]): Promise<number>;
  ogwForget(...args: (string | number)[]): Promise<number>;
}

/** How long a turn given to another instance stands before it passes on. */
const TURN_GRACE_MS = 250;

/** `|` separates a ticket's fields: a model name that holds one (or `%`) is escaped. */
function field(s: string): string {
  return s.replace(/%/g, '%25').replace(/\|/g, '%7C');
}

/** One spelling of a backend across instances: its URL without credentials or trailing slash. */
export function fleetId(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}${u.pathname.replace(/\/+$/, '')}`;
}

export class FleetSlots implements FleetGate<Backend> {
  private readonly held = new Map<Backend, Set<string>>();
  /** leases the other instances held at each backend, when last seen */
  private readonly others = new Map<Backend, number>();
  private readonly ids = new WeakMap<Backend, string>();
  private readonly modelArgs = new WeakMap<object, string[]>();
  private leases = 0;
  /**
   * What became of this instance's claims (granted by the fleet, refused full, refused for
   * another instance's turn, or granted on its own share with Redis unreachable) and of the
   * slots handed on at a release (kept: to one of its own waiters, given: to another
   * instance's, received: another instance's release came to one of its own). For /metrics.
   */
  readonly counts = {
    claims: { granted: 0, full: 0, turn: 0, local: 0 },
    handoffs: { kept: 0, given: 0, received: 0 },
  };
  private readonly grantListeners: ((b: Backend, ticket: string, leaseId: string) => void)[] = [];
  private readonly freedListeners: ((b: Backend | undefined) => void)[] = [];
  private readonly commands: SlotCommands;

  constructor(
    private readonly shared: SharedState,
    private readonly backends: () => readonly Backend[],
  ) {
    const c = shared.client;
    c.defineCommand('ogwClaim', { numberOfKeys: 7, lua: CLAIM });
    c.defineCommand('ogwRelease', { numberOfKeys: 7, lua: RELEASE });
    c.defineCommand('ogwEnqueue', { numberOfKeys: 6, lua: ENQUEUE });
    c.defineCommand('ogwRenew', { numberOfKeys: 1, lua: RENEW });
    c.defineCommand('ogwLeave', { numberOfKeys: 4, lua: LEAVE });
    c.defineCommand('ogwForget', { numberOfKeys: 5, lua: FORGET });
    this.commands = c as unknown as SlotCommands;
    shared.subscribe('freed', (id) => {
      const b = this.byId(id);
      if (b) for (const l of this.freedListeners) l(b);
    });
    // a slot another instance gave back, handed to one of this instance's waiters
    shared.subscribe(`grant:${shared.instance}`, (message) => {
      const [id, ticket, leaseId] = message.split('\n');
      const b = this.byId(id!);
      if (!b) {
        // a backend this instance does not know (configs differ): the slot goes on to the next
        void this.releaseById(id!, leaseId!);
        return;
      }
      this.hold(b, leaseId!);
      this.counts.handoffs.received++;
      for (const l of this.grantListeners) l(b, ticket!, leaseId!);
    });
    shared.onTick(() => this.renewAll());
    shared.onUp(() => {
      // Redis may have restarted empty: what this instance runs is written again, then every
      // waiter takes its place in the order again
      this.renewAll();
      // tickets of waiters that left while Redis was away are forgotten; the waiters left register again
      void this.commands.ogwForget(this.shared.key('queue:0'), this.shared.key('queue:1'), this.shared.key('waiting'), this.shared.key('flowtags'), this.shared.key('vt'), this.shared.instance).catch(() => {});
      for (const l of this.freedListeners) l(undefined);
    });
  }

  cap(b: Backend): number {
    const s = this.shared;
    if (s.up) return s.settling ? this.share(b) : b.slots;
    return this.alone(b);
  }

  /** This instance's share of a backend's slots (the instances alive when last seen, at least 1). */
  private share(b: Backend): number {
    return Math.max(1, Math.floor(b.slots / this.shared.instances));
  }

  /** Redis unreachable: the share, and for the first lease time no more than the others left free when last seen. */
  private alone(b: Backend): number {
    const s = this.shared;
    const early = s.up || performance.now() - s.changedAt < s.opts.leaseMs;
    return early ? Math.min(this.share(b), Math.max(0, b.slots - (this.others.get(b) ?? 0))) : this.share(b);
  }

  async claim(b: Backend): Promise<Claim> {
    const leaseId = `${this.shared.instance}:${(this.leases++).toString(36)}`;
    if (!this.shared.up) return this.local(b, leaseId);
    try {
      const [code, detail] = await this.commands.ogwClaim(...this.slotArgs(this.idOf(b), leaseId, b), TURN_GRACE_MS, ...this.served(b));
      const claims = this.counts.claims;
      if (Number(code) === 1) {
        claims.granted++;
        this.others.set(b, Math.max(0, Number(detail.slice(detail.lastIndexOf('@') + 1)) - (this.held.get(b)?.size ?? 0)));
        this.hold(b, leaseId);
        return { granted: true, leaseId, ticket: detail.slice(0, detail.lastIndexOf('@')) };
      }
      if (Number(code) === 0) {
        claims.full++;
        this.others.set(b, Math.max(0, b.slots - (this.held.get(b)?.size ?? 0)));
      } else {
        claims.turn++;
      }
      // full: try again when the first lease runs out (a release is heard at once anyway), at most a second from now
      return Number(code) === 0 ? { granted: false, reason: 'full', retryMs: Math.min(Number(detail) + 5, 1_000) } : { granted: false, reason: 'turn', retryMs: Number(detail) + 10 };
    } catch {
      // Redis went away under the claim (perhaps before this instance has heard): its share decides
      if (b.inFlight <= this.alone(b)) return this.local(b, leaseId);
      this.counts.claims.full++;
      return { granted: false, reason: 'full', retryMs: 200 };
    }
  }

  async release(b: Backend, leaseId: string): Promise<Handoff> {
    const mine = this.held.get(b);
    mine?.delete(leaseId);
    if (mine?.size === 0) this.held.delete(b);
    if (!this.shared.up) return { to: 'nobody' };
    try {
      const [ticket, lease, owner] = await this.releaseById(this.idOf(b), leaseId, b);
      if (!ticket) return { to: 'nobody' };
      if (owner !== this.shared.instance) {
        this.counts.handoffs.given++;
        return { to: 'other' };
      }
      this.counts.handoffs.kept++;
      this.hold(b, lease!);
      return { to: 'here', ticket, leaseId: lease! };
    } catch {
      // (a release that does not arrive is no harm: the lease runs out)
      return { to: 'nobody' };
    }
  }

  onGranted(listener: (b: Backend, ticket: string, leaseId: string) => void): void {
    this.grantListeners.push(listener);
  }

  private releaseById(id: string, leaseId: string, b?: Backend): Promise<string[]> {
    return this.commands.ogwRelease(...this.slotArgs(id, leaseId, b), this.shared.key(''), id, ...(b ? this.served(b) : []));
  }

  /** The keys and first arguments the claim and the release share (SLOT_COMMON); without `b`, a backend this instance does not know. */
  private slotArgs(id: string, leaseId: string, b: Backend | undefined): (string | number)[] {
    const k = (n: string) => this.shared.key(n);
    const apis = b === undefined ? '' : b.type === 'ollama' ? 'ollama,openai' : 'openai';
    const spelled = b?.catalog.known ? b.type : '*';
    return [k(`slots:${id}`), k('queue:0'), k('queue:1'), k('vt'), k(`turn:${id}`), k('waiting'), k('flowtags'), b?.slots ?? 0, this.shared.opts.leaseMs, this.shared.instance, leaseId, k('instance:'), apis, spelled];
  }

  private byId(id: string): Backend | undefined {
    return this.backends().find((x) => this.idOf(x) === id);
  }

  async enqueue(w: FleetWaiter): Promise<Enqueued | undefined> {
    if (!this.shared.up) return undefined;
    const k = (n: string) => this.shared.key(n);
    const klass = w.priority > 0 ? 1 : 0;
    try {
      const [member, tag] = await this.commands.ogwEnqueue(
        k(`queue:${klass}`),
        k('flowtags'),
        k('vt'),
        k('seq'),
        k('waiting'),
        k(`queue:${1 - klass}`),
        field(w.flow),
        w.weight,
        this.shared.instance,
        w.api,
        w.model === undefined ? '' : field(modelKey(w.model)),
        w.model === undefined ? '' : field(w.model),
        w.queueSize,
        w.flowQueueCap ?? '',
      );
      if (member === 'full') return { refused: 'queue_full', waiting: 0 };
      if (member === 'flow_full') return { refused: 'key_queue_full', waiting: Number(tag) };
      return { ticket: `${klass}#${String(member)}`, tag: Number(tag) };
    } catch {
      return undefined;
    }
  }

  leave(ticket: string): void {
    if (!this.shared.up) return;
    const at = ticket.indexOf('#');
    void this.commands.ogwLeave(this.shared.key(`queue:${ticket.slice(0, at)}`), this.shared.key('waiting'), this.shared.key('flowtags'), this.shared.key('vt'), ticket.slice(at + 1)).catch(() => {});
  }

  onFreed(listener: (b: Backend | undefined) => void): void {
    this.freedListeners.push(listener);
  }

  /** Jobs this instance runs now, fleet-wide: what it holds leases for. */
  get heldCount(): number {
    let n = 0;
    for (const s of this.held.values()) n += s.size;
    return n;
  }

  private local(b: Backend, leaseId: string): Claim {
    this.counts.claims.local++;
    this.hold(b, leaseId);
    return { granted: true, leaseId, ticket: '' };
  }

  private hold(b: Backend, leaseId: string): void {
    let mine = this.held.get(b);
    if (!mine) {
      mine = new Set();
      this.held.set(b, mine);
    }
    mine.add(leaseId);
  }

  /** Renew this instance's leases, and see what the others hold at each backend. */
  private renewAll(): void {
    if (!this.shared.up) return;
    for (const b of this.backends()) {
      const ids = this.held.get(b);
      const key = this.shared.key(`slots:${this.idOf(b)}`);
      const renewed = ids && ids.size > 0 ? this.commands.ogwRenew(key, this.shared.opts.leaseMs, ...ids) : this.shared.client.hlen(key);
      void renewed.then(
        (n) => this.others.set(b, Math.max(0, n - (this.held.get(b)?.size ?? 0))),
        () => {},
      );
    }
  }

  private idOf(b: Backend): string {
    let id = this.ids.get(b);
    if (id === undefined) {
      id = fleetId(b.url);
      this.ids.set(b, id);
    }
    return id;
  }

  /** The models a backend serves, as tickets spell them (computed again only when its catalog changes). */
  private served(b: Backend): string[] {
    if (!b.catalog.known) return [];
    const models = b.catalog.models;
    let args = this.modelArgs.get(models);
    if (!args) {
      args = [...models.keys()].map(field);
      this.modelArgs.set(models, args);
    }
    return args;
  }
}
