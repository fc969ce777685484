/** Severity of a log entry. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** One structured log entry: an event name (`noun:verb`) and flat fields. */
export interface LogEntry {
  level: LogLevel;
  event: string;
  [field: string]: unknown;
}

/** Where the tracker sends its structured logs. */
export interface TrackerLogger {
  log(entry: LogEntry): void;
}

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * A logger writing one JSON object per line (`{"time":…,"level":…,"event":…,…}`), the format log
 * shippers (Loki, Elasticsearch, CloudWatch) parse without configuration.
 *
 * @example
 * const logger = createJsonLogger((line) => process.stderr.write(line), 'info');
 */
export function createJsonLogger(write: (line: string) => void, minLevel: LogLevel = 'info'): TrackerLogger {
  const threshold = LEVELS[minLevel];
  return {
    log(entry) {
      if (LEVELS[entry.level] < threshold) return;
      write(`${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);
    },
  };
}

/**
 * Wraps a logger so that each event name is written at most `perSecond` times a second; a flood of
 * hostile frames, or a Redis outage under load (one failed operation per announce), must not turn
 * into a flood of log lines (disk and log-pipeline cost). The number of suppressed entries is
 * reported on the next entry of that event. Info entries (start, stop, cluster changes) always pass.
 */
export function rateLimitLogger(inner: TrackerLogger, perSecond: number, now: () => number): TrackerLogger {
  const windows = new Map<string, { start: number; count: number; suppressed: number }>();
  return {
    log(entry) {
      if (entry.level === 'info') {
        inner.log(entry);
        return;
      }
      const t = now();
      let w = windows.get(entry.event);
      if (!w || t - w.start >= 1000) {
        const suppressed = w?.suppressed ?? 0;
        w = { start: t, count: 0, suppressed: 0 };
        windows.set(entry.event, w);
        // The map only ever holds one slot per distinct event name, a small closed set.
        if (suppressed > 0) entry = { ...entry, suppressedBefore: suppressed };
      }
      if (w.count >= perSecond) {
        w.suppressed++;
        return;
      }
      w.count++;
      inner.log(entry);
    },
  };
}
