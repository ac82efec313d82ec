/*
 * NAME
 *   errors - the two kinds of failure a stage knows
 *
 * DESCRIPTION
 *   Refused: the input (a record, a descriptor, a file) is bad. The stage
 *   logs one event with the reason and keeps serving. `reason` is a stable
 *   machine code (docs/logging.md), `message` is for humans.
 *
 *   Anything else thrown is a bug or a broken environment; a daemon exits by
 *   its one fatal path (daemon.ts) and systemd restarts it.
 */

/** Refused - bad or hostile input, with a stable reason code. */
export class Refused extends Error {
  readonly reason: string;
  /** The level it is logged at: 'error' when an operator should look (a sign of a compromised peer). */
  readonly level: 'warn' | 'error';
  constructor(reason: string, message: string, level: 'warn' | 'error' = 'warn') {
    super(message);
    this.name = 'Refused';
    this.reason = reason;
    this.level = level;
  }
}

/** errnoCode - the errno name of a Node or native error, or undefined. */
export function errnoCode(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    return (err as { code: string }).code;
  }
  return undefined;
}

/** describe - a one-line, bounded description of any thrown value (never a stack). */
export function describe(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.length > 500 ? `${text.slice(0, 500)}…` : text;
}
