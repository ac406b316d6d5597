// The process logger: pino, JSON lines on stdout. A leaf module: imports nothing of the gateway.
import { pino, type Logger, type DestinationStream, type LevelWithSilent } from 'pino';

export type { Logger };

export interface LoggerOptions {
  readonly level: LevelWithSilent;
  /** where lines go; stdout when absent (tests pass a stream that collects them) */
  readonly destination?: DestinationStream;
}

export function createLogger(opts: LoggerOptions): Logger {
  return pino(
    {
      level: opts.level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      // belt and braces: nothing named like a secret or a payload may ever be printed
      redact: { paths: ['authorization', 'headers.authorization', 'prompt', 'messages', 'body'], censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    opts.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
