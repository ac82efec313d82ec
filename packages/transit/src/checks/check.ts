/*
 * NAME
 *   check - the one interface every transit check implements, and the runner
 *
 * SYNOPSIS
 *   import { runChecks, CheckUnavailable } from './check.js';
 *   import type { Check, CheckInput, CheckResult, CheckRun, ChecksOutcome } from './check.js';
 *
 *   runChecks(checks: readonly Check[], input: CheckInput): Promise<ChecksOutcome>
 *   class CheckUnavailable extends Error          thrown by a check: "hold and retry"
 *
 * DESCRIPTION
 *   A check looks at transit's own sealed copy of a file (a read-only
 *   descriptor, read only with positional reads) and answers pass, fail with
 *   a reason, or error with a reason. The content checks (size.ts,
 *   file-type.ts, extension.ts) and, later, ClamAV and YARA all implement the
 *   same Check interface.
 *
 *   runChecks() starts every check at once (they only read, with positional
 *   reads, so they cannot disturb each other), waits for each one until its
 *   own timeoutMs, and always reports every check's result, in the order of
 *   the list, even after a failure: the signed report then says what each
 *   check found. The verdict comes from core's decide() (verdict.ts), the
 *   one rule transit and egress share.
 *
 *   Fail closed (design invariant 5):
 *     - a check that runs past timeoutMs is aborted (its AbortSignal fires)
 *       and reported as error "timed out after N ms"; whatever it answers
 *       later is ignored;
 *     - a thrown exception is an error whose reason is the message (one
 *       line, bounded, never a stack);
 *     - a result that is not { outcome: 'pass'|'fail'|'error', reason:
 *       string, engine: string } is an error;
 *     - a check with a missing name, no run function or an invalid timeoutMs
 *       is an error;
 *     - the verdict is 'accepted' only if there is at least one check and
 *       every result is 'pass'.
 *
 *   Retry: a check that cannot reach its engine (clamd down, socket refused)
 *   throws CheckUnavailable. Its result is outcome 'error' with retry: true,
 *   and the overall outcome carries retry: true when every result that is
 *   not a pass is such a retryable error: the file is not known to be bad,
 *   only not yet known to be good. The verdict is still 'rejected', so a
 *   caller that does not implement holding treats it as a rejection. A
 *   definite fail, or any other error, makes retry false: trying again
 *   cannot turn the file into an accepted one. A check that wants its own
 *   timeouts retried must throw CheckUnavailable before runChecks' timeout.
 *
 *   Reasons, names and engines go through core's escapeForLog, bounded:
 *   control, format, bidi and invisible characters and "\" are written as
 *   \u{hex}, because they end up in signed reports and logs.
 *
 * SECURITY
 *   The input is frozen and the same object is handed to every check, which
 *   lets checks share one content detection (content.ts). Checks receive
 *   the descriptor but do not own it: they never close it, never move its
 *   offset and read only bounded chunks; runChecks' caller closes it.
 *
 * BUGS
 *   A timeout is enforced by a timer: a check that blocks the event loop
 *   (synchronous CPU work with no await) cannot be interrupted. The content
 *   checks read and scan in 256 KiB steps with an await between steps.
 *
 * DIAGNOSTICS
 *   runChecks throws TypeError only for a malformed input (a bug in transit,
 *   not a property of the file); everything a check does becomes a result.
 */
import { decide, escapeForLog, type Decision } from '@sluice/core';

/** What a check gets: transit's own sealed copy and what transit knows about it. */
export interface CheckInput {
  /** Read-only descriptor of the sealed copy. Positional reads only; never closed by a check. */
  readonly fd: number;
  /** Size of the copy in bytes, as transit measured it. */
  readonly size: number;
  /** SHA-256 of the copy, lowercase hex, as transit computed it while copying. */
  readonly sha256hex: string;
  /** The uploaded name: untrusted data, never a path. */
  readonly name: string;
}

export type CheckOutcome = 'pass' | 'fail' | 'error';

/** One check's result, as it appears in the report. */
export interface CheckResult {
  name: string;
  outcome: CheckOutcome;
  reason: string;
  engine: string;
  /** Present (true) only when the check threw CheckUnavailable: hold the file and try again. */
  retry?: true;
}

/** What Check.run resolves to; runChecks adds the name (and retry). */
export type CheckRun = Omit<CheckResult, 'name' | 'retry'>;

export interface Check {
  /** Stable identifier, shown in reports: 'size-limit', 'file-type', 'clamav', ... */
  readonly name: string;
  /** How long runChecks waits before aborting the check and calling it an error. */
  readonly timeoutMs: number;
  /** Engine named in results runChecks makes up itself (timeout, exception); optional. */
  readonly engine?: string;
  /** Look at the file; reject/throw CheckUnavailable when the engine cannot be reached. */
  run(input: CheckInput, signal: AbortSignal): Promise<CheckRun>;
}

export interface ChecksOutcome extends Decision {
  results: CheckResult[];
}

/**
 * CheckUnavailable - thrown by a check whose engine cannot be reached now
 * (as opposed to one that looked at the file and failed or broke).
 */
export class CheckUnavailable extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'CheckUnavailable';
  }
}

/** Bound of a reason, in UTF-16 code units, before the ellipsis. */
export const MAX_REASON_CHARS = 500;
const MAX_NAME_CHARS = 64;
const MAX_ENGINE_CHARS = 128;
/** setTimeout's upper bound; larger values fire at once. */
const MAX_TIMEOUT_MS = 2_147_483_647;

/** messageOf - a thrown value as one bounded line, never a stack. */
function messageOf(err: unknown): string {
  let text: string;
  try {
    text = err instanceof Error ? `${err.message}` : String(err);
  } catch {
    text = 'unprintable exception';
  }
  return escapeForLog(text === '' ? 'exception without a message' : text, MAX_REASON_CHARS);
}

/** checkNameOf - the reported name of a check, whatever the object looks like. */
function checkNameOf(check: unknown): string {
  try {
    const name = (check as { name?: unknown } | null)?.name;
    if (typeof name === 'string' && name !== '') return escapeForLog(name, MAX_NAME_CHARS);
  } catch {
    // fall through: a getter that throws is a nameless check
  }
  return '(unnamed check)';
}

/** engineOf - the engine a check declares up front, or 'unknown'. */
function engineOf(check: unknown): string {
  try {
    const engine = (check as { engine?: unknown } | null)?.engine;
    if (typeof engine === 'string' && engine !== '') return escapeForLog(engine, MAX_ENGINE_CHARS);
  } catch {
    // fall through
  }
  return 'unknown';
}

/** normalizeRun - validate what a check returned; anything malformed is an error. */
function normalizeRun(name: string, raw: unknown, fallbackEngine: string): CheckResult {
  const malformed = (what: string): CheckResult => ({
    name,
    outcome: 'error',
    reason: `malformed result: ${what}`,
    engine: fallbackEngine,
  });
  if (raw === null || typeof raw !== 'object') return malformed(`not an object (${raw === null ? 'null' : typeof raw})`);
  const { outcome, reason, engine } = raw as Record<string, unknown>;
  if (outcome !== 'pass' && outcome !== 'fail' && outcome !== 'error') {
    return malformed(`unknown outcome ${escapeForLog(typeof outcome === 'string' ? JSON.stringify(outcome) : typeof outcome, 40)}`);
  }
  if (typeof reason !== 'string') return malformed('reason is not a string');
  if (typeof engine !== 'string' || engine === '') return malformed('engine is not a non-empty string');
  const text = reason === '' && outcome !== 'pass' ? '(no reason given)' : reason;
  return { name, outcome, reason: escapeForLog(text, MAX_REASON_CHARS), engine: escapeForLog(engine, MAX_ENGINE_CHARS) };
}

const TIMED_OUT: unique symbol = Symbol('timed out');
type Settled = { ok: true; value: unknown } | { ok: false; error: unknown };

/** runOne - run one check under its timeout; always resolves to a CheckResult. */
async function runOne(check: Check, input: CheckInput): Promise<CheckResult> {
  const name = checkNameOf(check);
  const engine = engineOf(check);
  let timeoutMs: unknown;
  try {
    timeoutMs = check.timeoutMs;
  } catch {
    timeoutMs = undefined;
  }
  if (typeof timeoutMs !== 'number' || !Number.isSafeInteger(timeoutMs) || timeoutMs <= 0 || timeoutMs > MAX_TIMEOUT_MS) {
    return { name, outcome: 'error', reason: 'invalid timeoutMs (must be an integer from 1 to 2147483647)', engine };
  }
  const limit = timeoutMs;

  const controller = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<typeof TIMED_OUT>((resolve) => {
    timer = setTimeout(() => resolve(TIMED_OUT), limit);
  });
  // Start the check in a microtask so that a synchronous throw is a rejection too,
  // and turn its settlement into a value so a late rejection is never unhandled.
  const running: Promise<Settled> = Promise.resolve()
    .then(() => check.run(input, controller.signal))
    .then(
      (value): Settled => ({ ok: true, value }),
      (error: unknown): Settled => ({ ok: false, error }),
    );

  try {
    const settled = await Promise.race([running, timedOut]);
    if (settled === TIMED_OUT) {
      const reason = `timed out after ${limit} ms`;
      controller.abort(new Error(reason));
      return { name, outcome: 'error', reason, engine };
    }
    if (!settled.ok) {
      if (settled.error instanceof CheckUnavailable) {
        return { name, outcome: 'error', reason: `unavailable: ${messageOf(settled.error)}`, engine, retry: true };
      }
      return { name, outcome: 'error', reason: messageOf(settled.error), engine };
    }
    try {
      return normalizeRun(name, settled.value, engine);
    } catch (err) {
      // A result whose properties throw when read.
      return { name, outcome: 'error', reason: `malformed result: ${messageOf(err)}`, engine };
    }
  } finally {
    clearTimeout(timer);
  }
}

/** validateInput - transit's own input must be well formed; a bad one is a bug here. */
function validateInput(input: CheckInput): CheckInput {
  if (input === null || typeof input !== 'object') throw new TypeError('runChecks: input must be an object');
  const { fd, size, sha256hex, name } = input;
  if (!Number.isSafeInteger(fd) || fd < 0) throw new TypeError('runChecks: input.fd must be a descriptor number');
  if (!Number.isSafeInteger(size) || size < 0) throw new TypeError('runChecks: input.size must be a non-negative safe integer');
  if (typeof sha256hex !== 'string' || !/^[0-9a-f]{64}$/.test(sha256hex)) {
    throw new TypeError('runChecks: input.sha256hex must be 64 lowercase hex digits');
  }
  if (typeof name !== 'string') throw new TypeError('runChecks: input.name must be a string');
  return Object.freeze({ fd, size, sha256hex, name });
}

/**
 * runChecks - run every check on the input (concurrently, each under its own
 * timeout) and decide. Never rejects because of a check.
 */
export async function runChecks(checks: readonly Check[], input: CheckInput): Promise<ChecksOutcome> {
  if (!Array.isArray(checks)) throw new TypeError('runChecks: checks must be an array');
  const frozen = validateInput(input);
  const results = await Promise.all(checks.map((check) => runOne(check, frozen)));
  return { ...decide(results), results };
}
