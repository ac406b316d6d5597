// Where the process log's JSON lines go: one file descriptor (stdout, or a file), written in
// batches. A leaf module.
//
// Each batch is one write(2) made at once, on the event loop's thread: no hand-off to the thread
// pool and back. That is safe because the descriptor is made non-blocking where it could block
// (a pipe or a socket: journald's stdout, a log shipper): a reader that falls behind shows as
// EAGAIN, and what it did not take waits here (bounded) and is written again shortly, so a stalled
// reader never stalls the gateway. Regular files and /dev/null do not block.
//
// Why not pino.destination (sonic-boom)? Its write() measures the byte length of its whole
// pending batch on every line (Buffer.byteLength of a string it keeps growing with +=, which
// flattens it each time): with 32 KiB batches that was 5–13 µs a line, more than pino's own
// serialization (~1.5 µs), at one line per request. Here a line costs a string append.
import { constants, openSync, writeSync } from 'node:fs';

export interface LineBatcherOptions {
  /** write when this many characters wait */
  readonly batchChars?: number;
  /** and at least this often while anything waits */
  readonly flushEveryMs?: number;
  /** lines beyond this many waiting characters are dropped (counted, and reported by a line once
   * the reader catches up), so a reader that stopped cannot take the gateway's memory */
  readonly maxPendingChars?: number;
  /** the longest wait before writing again while the reader takes nothing (EAGAIN); the wait
   * starts at 1 ms and doubles while nothing is taken */
  readonly retryMs?: number;
}

/**
 * The descriptor for a log destination: stdout (made non-blocking if it is a pipe or a socket,
 * by Node's own stdout stream, which opens it so), or a file opened for appending (non-blocking,
 * which matters only if it is a FIFO).
 */
export function logDescriptor(path?: string): number {
  if (path !== undefined) return openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK, 0o644);
  void process.stdout;
  return 1;
}

/** A pino destination (`write(line)`, `flush(cb)`) onto a file descriptor. */
export class LineBatcher {
  private pending = '';
  /** what the reader has not taken yet of the batch last written (after EAGAIN or a short write) */
  private rest: Buffer | undefined;
  private retry: NodeJS.Timeout | undefined;
  private backoffMs = 1;
  /** whether the last writeOnce wrote anything */
  private progressed = false;
  private dropped = 0;
  private readonly batchChars: number;
  private readonly maxPendingChars: number;
  private readonly retryMs: number;
  private readonly flushed: ((err?: Error) => void)[] = [];
  private readonly timer: NodeJS.Timeout;
  private readonly onExit = () => this.flushSync();

  constructor(
    private readonly fd: number,
    opts: LineBatcherOptions = {},
  ) {
    this.batchChars = opts.batchChars ?? 32 * 1024;
    this.maxPendingChars = opts.maxPendingChars ?? 16 * 1024 * 1024;
    this.retryMs = opts.retryMs ?? 100;
    this.timer = setInterval(() => this.drain(), opts.flushEveryMs ?? 250).unref();
    // nothing waiting is lost when the process exits, whatever the reason
    process.once('exit', this.onExit);
  }

  write(line: string): boolean {
    if (this.pending.length + line.length > this.maxPendingChars) {
      this.dropped++;
      return false;
    }
    this.pending += line;
    if (this.pending.length >= this.batchChars && this.rest === undefined) this.drain();
    return true;
  }

  /** Calls back once every line written so far is with the OS. */
  flush(cb: (err?: Error) => void): void {
    this.drain();
    if (this.rest === undefined) process.nextTick(cb);
    else this.flushed.push(cb);
  }

  /** Writes everything that waits, blocking (up to about two seconds of a reader taking nothing): for the process's exit. */
  flushSync(): void {
    const nap = new Int32Array(new SharedArrayBuffer(4));
    for (let idle = 0; idle < 200; idle++) {
      if (this.writeOnce()) return;
      Atomics.wait(nap, 0, 0, 10);
    }
  }

  /** Stops the timers and the exit hook (the descriptor stays open: it is the caller's). */
  close(): void {
    clearInterval(this.timer);
    clearTimeout(this.retry);
    process.removeListener('exit', this.onExit);
  }

  private drain(): void {
    if (this.retry !== undefined) return;
    if (this.writeOnce()) {
      for (const cb of this.flushed.splice(0)) cb();
      return;
    }
    // the reader is behind: write again soon if it took something, later while it takes nothing
    this.backoffMs = this.progressed ? 1 : Math.min(this.backoffMs * 2, this.retryMs);
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.drain();
    }, this.backoffMs).unref();
  }

  /**
   * Writes what the reader will take now: true when nothing is left. A descriptor that fails
   * (the reader is gone) loses what was for it, and the next batch tries again.
   */
  private writeOnce(): boolean {
    this.progressed = false;
    for (;;) {
      if (this.rest === undefined) {
        if (this.pending.length === 0 && this.dropped === 0) return true;
        this.rest = Buffer.from(this.takePending(), 'utf8');
      }
      const buf = this.rest;
      let n: number;
      try {
        n = writeSync(this.fd, buf);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return false;
        n = buf.length;
      }
      if (n > 0) this.progressed = true;
      this.rest = n < buf.length ? buf.subarray(n) : undefined;
      if (this.rest !== undefined) return false;
    }
  }

  private takePending(): string {
    let text = this.pending;
    this.pending = '';
    if (this.dropped > 0) {
      text += `${JSON.stringify({ level: 'warn', time: new Date().toISOString(), pid: process.pid, dropped: this.dropped, msg: 'log lines dropped: the log reader did not keep up' })}\n`;
      this.dropped = 0;
    }
    return text;
  }
}
