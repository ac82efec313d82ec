/*
 * NAME
 *   log - one structured logger for every stage
 *
 * SYNOPSIS
 *   const log = createLogger('transit');
 *   log.info({ event: 'transfer-received', id, peer }, 'received');
 *   const tlog = log.child({ id });        // one child per transfer
 *   escapeLogLine(line)                    // the net every line passes (exported for its tests)
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
 * SECURITY
 *   Uploaders and compromised peers choose names, refusal texts, check
 *   reasons (a virus or rule name, a quoted marker) and error texts. JSON
 *   escaping keeps a line well-formed, but `jq -r` decodes "\u001b" back to
 *   ESC, and JSON leaves C1 controls (U+009B CSI), bidi overrides (U+202E)
 *   and zero-width characters raw. So untrusted text is escaped twice over:
 *
 *   1. At the call site: a field that carries such text is written through
 *      escapeForLog (names.ts), the one escaper: bounded, and unambiguous
 *      (it escapes "\" too, so every \u{…} in a line is ours).
 *   2. Here, as a net: escapeLogLine runs over every finished line (pino's
 *      hooks.streamWrite), finds each JSON string in it, decodes it as a
 *      reader would, and rewrites it through logSafe (escapeForLog, unless
 *      nothing but "\" would change) when it holds anything escapeForLog
 *      escapes. No string written by this logger decodes to a control,
 *      format, separator or invisible character, whatever a call site forgot.
 *
 *   Why the net works on the finished line, and why it has no list of
 *   "our own" fields it skips: pino applies formatters.log only to the
 *   object of a call (not to the message, not to child bindings: a child
 *   made without options resets formatters.bindings), and serializes `err`
 *   after that formatter. The finished line is the one place every string
 *   passes. A skip list would be one more thing to keep right as fields
 *   are added; instead a string with nothing to escape (all of our own
 *   fields, and anything escaped at its call site) comes out unchanged, so
 *   skipping buys nothing. Cost: one regular-expression test per line;
 *   only a line with a JSON escape or a non-ASCII character is parsed
 *   further (docs/logging.md).
 */
import { pino, type Logger } from 'pino';
import { escapeForLog, logSafe } from './names.js';

export type { Logger } from 'pino';

export type Stage = 'ingress' | 'transit' | 'egress' | 'dev' | 'cli';

/** Bound of one string the net had to escape, in UTF-16 code units (call sites bound theirs more tightly). */
export const LOG_NET_MAX_CHARS = 4096;

/** A line with none of these (a JSON escape, or a character outside printable ASCII) has nothing to escape. */
const MAYBE_UNSAFE = /\\[bfnrtu]|[^\x20-\x7e\n]/;
/** One JSON string token; outside strings, a JSON line has no quote and no backslash. */
const JSON_STRING = /"(?:[^"\\]|\\.)*"/g;

/** escapeLogLine - one finished JSON line with every string that decodes to something unsafe rewritten through logSafe. */
export function escapeLogLine(line: string): string {
  if (!MAYBE_UNSAFE.test(line)) return line;
  return line.replace(JSON_STRING, (token) => {
    if (!MAYBE_UNSAFE.test(token)) return token;
    let s: string;
    try {
      s = JSON.parse(token) as string;
    } catch {
      // Not JSON (pino writes only JSON; a line from elsewhere may not be): escape the text as it stands.
      return JSON.stringify(escapeForLog(token.slice(1, -1), LOG_NET_MAX_CHARS));
    }
    const safe = logSafe(s, LOG_NET_MAX_CHARS);
    return safe === s ? token : JSON.stringify(safe);
  });
}

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
        streamWrite: escapeLogLine,
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
