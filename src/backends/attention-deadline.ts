// A deadline that counts only the time in which the gateway could have heard an answer. A
// probe's timeout measured on the wall clock also runs while the gateway's own event loop is
// stalled (16,000 requests arriving at once kept it busy for seconds), and Node runs expired
// timers before it reads the sockets: an answer that came in time sits unread while its timeout
// fires, and a healthy backend is called hung. A burst of jobs once took all four backends of a
// bench out of rotation that way, and the queue answered its 1,500 waiters 503.
//
// So the time is counted in short steps, each worth at most its own length plus a little: a
// stall between two steps counts as one step. Only when the steps add up to the whole timeout
// does the deadline pass, and then only after one more turn of the loop (a `setImmediate`,
// which runs after the sockets are read), so an answer that came during the last stall is heard
// first. On a loop that is never stalled, this is the wall clock.

const STEP_MS = 100;
/** a step counts in full up to this much late (timers are never exact) */
const SLACK_MS = 25;

export interface AttentionDeadline {
  /** the answer came: the deadline will not pass */
  clear(): void;
}

/** Calls `expired` once `ms` of the gateway's attention has passed, unless cleared first. */
export function attentionDeadline(ms: number, expired: () => void): AttentionDeadline {
  let left = ms;
  let step = 0;
  let armedAt = 0;
  let timer: NodeJS.Timeout | undefined;
  let immediate: NodeJS.Immediate | undefined;
  const arm = (): void => {
    step = Math.min(STEP_MS, left);
    armedAt = performance.now();
    timer = setTimeout(tick, step).unref();
  };
  const tick = (): void => {
    left -= Math.min(performance.now() - armedAt, step + SLACK_MS);
    if (left > 0) return arm();
    timer = undefined;
    immediate = setImmediate(expired).unref();
  };
  arm();
  return {
    clear(): void {
      if (timer) clearTimeout(timer);
      if (immediate) clearImmediate(immediate);
      timer = undefined;
      immediate = undefined;
    },
  };
}
