// Usage and budgets run on UTC calendar periods: a day from 00:00 UTC, a month from the 1st.

/** `YYYY-MM-DD` (UTC) of a moment in epoch milliseconds. */
export function dayOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** `YYYY-MM` (UTC). */
export function monthOf(ms: number): string {
  return new Date(ms).toISOString().slice(0, 7);
}

/** `YYYY-MM-01` (UTC): the first day of the month, as the ledger's `since`. */
export function monthStartDay(ms: number): string {
  return `${monthOf(ms)}-01`;
}

/** Epoch milliseconds of the next 00:00 UTC. */
export function nextDayStart(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
}

/** Epoch milliseconds of the 1st of next month, 00:00 UTC. */
export function nextMonthStart(ms: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
}
