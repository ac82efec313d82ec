/*
 * NAME
 *   log - one structured logger for every stage
 *
 * SYNOPSIS
 *   const log = createLogger('transit');
 *   log.info({ event: 'transfer-received', id, peer }, 'received');
 *   const tlog = log.child({ id });        // one child per transfer
 *
 * DESCRIPTION
 *   JSON lines on stdout (journald under systemd, the terminal under
 *   `sluice dev`). Every line carries `stage` and `event`; transfer lines
 *   carry `id`; lines about a connection carry `peer` ({pid, uid, gid});
 *   refusals carry `reason`. docs/logging.md lists every event.
 *
 *   Writes are synchronous: a daemon killed with SIGKILL has still written
 *   every line it logged, which the crash tests and operators rely on.
 *
 *   Untrusted strings (uploaded names) go through escapeForLog before they
 *   reach a log line; JSON escaping alone keeps the line well-formed, but a
 *   human reading `jq -r` output must not see raw terminal escapes or bidi
 *   overrides either.
 */
import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

export type Stage = 'ingress' | 'transit' | 'egress' | 'dev' | 'cli';

/** LogObserver - sees each line at warn level and above that is written (status.ts counts them, keeps the last error). */
export type LogObserver = (level: number, obj: Record<string, unknown>) => void;
let observer: LogObserver | null = null;

/** setLogObserver - the one observer of this process's loggers. */
export function setLogObserver(fn: LogObserver | null): void {
  observer = fn;
}

/** createLogger - a JSON-lines logger for one stage, writing synchronously to fd 1. */
export function createLogger(stage: Stage, level: string = process.env.SLUICE_LOG_LEVEL ?? 'info'): Logger {
  return pino(
    {
      level,
      base: { stage, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      messageKey: 'msg',
      formatters: { level: (label) => ({ level: label }) },
      hooks: {
        logMethod(args, method, level) {
          if (observer && level >= 40 && typeof args[0] === 'object' && args[0] !== null) {
            try {
              observer(level, args[0] as Record<string, unknown>);
            } catch {
              /* counting a line must never stop it being written */
            }
          }
          return method.apply(this, args);
        },
      },
    },
    pino.destination({ fd: 1, sync: true }),
  );
}
