/*
 * NAME
 *   yara - the YARA check: transit's sealed copy scanned with Debian's yara
 *
 * SYNOPSIS
 *   import { yaraCheck, parseYaraOutput } from './yara.js';
 *
 *   const check = await yaraCheck({ rules, command, compiler, timeoutMs, maxConcurrent, maxBytes });
 *                                   // throws YaraSetupError: rules do not compile, yara cannot scan
 *   check.run(input, signal)        the Check interface
 *   check.warnings                  what yarac warned about at compile time
 *   check.close()                   releases the compiled rules
 *
 * DESCRIPTION
 *   Why the yara command and not a library binding: see docs/scanners.md.
 *   In short, Debian's yara 4.2.3 is what operators already run and update
 *   through apt; the npm bindings either panic under hardening
 *   (@litko/yara-x under MemoryDenyWriteExecute) or cannot be installed
 *   offline (@automattic/yara); and a separate process keeps a crash, a
 *   runaway regular expression or a memory blow-up in the rules engine out
 *   of transit, where a timeout can kill it.
 *
 *   At start (yaraCheck):
 *     1. yarac compiles the operator's rules (namespace "rules") together
 *        with one rule of our own (namespace "sluice"):
 *            rule sluice_seen { condition: filesize == sluice_size }
 *        into a memfd (yarac writes /dev/fd/3), which is then sealed: the
 *        rules scanned with are exactly those compiled at start, whatever
 *        happens to the source files later. A rule that does not compile
 *        throws YaraSetupError with yarac's message, and transit does not
 *        start (runDaemon logs startup-failed).
 *     2. A self-test scans a small sealed memfd the way every file is
 *        scanned; if sluice_seen does not match, yara cannot read a memfd
 *        through /dev/fd here (e.g. /proc hidden), and transit does not
 *        start.
 *
 *   Each scan runs
 *       yara -C -e -d sluice_size=<size> -a <seconds> /dev/fd/3 /dev/fd/4
 *   with the compiled rules as fd 3 and the sealed copy's read-only
 *   descriptor as fd 4 (inherited; yara reopens /dev/fd/4, which works
 *   because a memfd's mode is 0777 and it is sealed). yara exits 0 whether
 *   or not a rule matched, so the outcome comes from its output, one line
 *   per matching rule, "namespace:rule /dev/fd/4":
 *     - sluice:sluice_seen must be there: it proves yara read a file of the
 *       right size. /dev/stdin from a pipe, for instance, is scanned as an
 *       empty file and would silently match nothing (facts.md);
 *     - any rules:NAME line is a match: fail, "matched YARA rule(s): NAME, ...";
 *     - exit status 0, only those lines, nothing on stderr: pass;
 *     - anything else (non-zero exit, a signal, output we do not expect, a
 *       warning such as "too many matches", which means results may be
 *       wrong): error, and the file is rejected.
 *   A scan longer than timeoutMs is killed (SIGKILL) and rejects the file
 *   (yara's own -a timeout, rounded up to seconds, is a second fence): a
 *   rule set that cannot finish on a file is a property of that file and
 *   those rules, so retrying would not help. A file larger than maxBytes
 *   is not scanned: error. At most maxConcurrent yara processes run; a
 *   scan that waits longer than timeoutMs for one throws CheckUnavailable
 *   (held for retry), and so does a yara that cannot be started (EAGAIN,
 *   EMFILE, ...).
 *
 *   The engine in reports: "yara 4.2.3, rules sha256:<first 16 hex digits
 *   of the compiled rules>", so a report says which rule set judged it.
 *
 * SECURITY
 *   Nothing here depends on MemoryDenyWriteExecute-incompatible code in
 *   transit: yara is a separate executable. It gets two read-only
 *   descriptors of sealed memfds and an environment of LC_ALL=C only;
 *   its output is bounded (1 MiB) and parsed strictly.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as native from '@sluice/native';
import { errnoCode, describe, type Config } from '@sluice/core';
import { CheckUnavailable, type Check, type CheckInput, type CheckRun } from './check.js';
import { Slots } from './slots.js';

/** YaraConfig - the `transit.yara` section (docs/configuration.md), without `enabled`. */
export type YaraConfig = Omit<Config['transit']['yara'], 'enabled'>;

export interface YaraCheck extends Check {
  /** yarac's warnings at compile time (one per line), for the log. */
  readonly warnings: string[];
  close(): void;
}

/** Thrown by yaraCheck when transit must not start: the message says why. */
export class YaraSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'YaraSetupError';
  }
}

/** The target path yara is given: descriptor 4 of the child. */
export const TARGET = '/dev/fd/4';
const SIZE_VAR = 'sluice_size';
const CANARY = `rule sluice_seen { condition: filesize == ${SIZE_VAR} }\n`;
const CANARY_ID = 'sluice:sluice_seen';
const OUTPUT_MAX = 1024 * 1024;
const STDERR_MAX = 4096;
const COMPILE_TIMEOUT_MS = 300_000;
const ENV = { LC_ALL: 'C' };

/** What one scan's stdout says: the operator's rules that matched, and whether our size rule did. */
export type YaraOutput = { ok: true; matched: string[]; seen: boolean } | { ok: false; error: string };

/**
 * parseYaraOutput - yara -e output for one target. Every line must be
 * "rules:NAME TARGET" or "sluice:sluice_seen TARGET"; anything else is an
 * error, never silently skipped.
 */
export function parseYaraOutput(stdout: string, target = TARGET): YaraOutput {
  const matched: string[] = [];
  let seen = false;
  if (stdout !== '' && !stdout.endsWith('\n')) return { ok: false, error: 'yara output ends in the middle of a line' };
  for (const line of stdout.split('\n').slice(0, -1)) {
    const m = /^(rules|sluice):([A-Za-z_][A-Za-z0-9_]{0,127}) (.*)$/.exec(line);
    if (!m || m[3] !== target) return { ok: false, error: `unexpected yara output: ${JSON.stringify(line.slice(0, 120))}` };
    if (m[1] === 'sluice') {
      if (`${m[1]}:${m[2]}` !== CANARY_ID) return { ok: false, error: `unexpected yara output: ${JSON.stringify(line.slice(0, 120))}` };
      seen = true;
    } else if (!matched.includes(m[2]!)) {
      matched.push(m[2]!);
    }
  }
  return { ok: true, matched, seen };
}

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  overflow: boolean;
}

/**
 * runTool - run a program with extra inherited descriptors (child fds 3, 4,
 * ...), collect bounded output, kill it (SIGKILL) after timeoutMs or on
 * abort. A program that cannot be started rejects with the spawn error.
 */
function runTool(command: string, args: string[], fds: number[], timeoutMs: number, signal?: AbortSignal): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe', ...fds], env: ENV });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let overflow = false;
    let failed = false;
    const kill = () => child.kill('SIGKILL');
    const timer = setTimeout(() => {
      timedOut = true;
      kill();
    }, timeoutMs);
    signal?.addEventListener('abort', kill, { once: true });
    child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      if (stdout.length + s.length > OUTPUT_MAX) {
        overflow = true;
        kill();
      } else stdout += s;
    });
    child.stderr!.setEncoding('utf8').on('data', (s: string) => {
      if (stderr.length < STDERR_MAX) stderr += s.slice(0, STDERR_MAX - stderr.length);
    });
    child.on('error', (err) => {
      // spawn failed (ENOENT, EAGAIN, ...): no 'close' with a status follows that matters.
      failed = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', kill);
      reject(err);
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', kill);
      if (!failed) resolve({ code, signal: sig, stdout, stderr, timedOut, overflow });
    });
  });
}

/** oneLineOf - tool messages, joined to one line. */
const oneLineOf = (s: string): string =>
  s
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join('; ');

/** codeOf - an errno code, or else a one-line description of what was thrown. */
const codeOf = (err: unknown): string => errnoCode(err) ?? describe(err);

/** sealedMemfd - a read-only descriptor of a sealed memfd holding `bytes`. */
function sealedMemfd(name: string, bytes: string | Uint8Array): number {
  const w = native.memfdCreate(name);
  try {
    fs.writeSync(w, typeof bytes === 'string' ? Buffer.from(bytes) : bytes);
    native.addSeals(w, native.ALL_SEALS);
    return fs.openSync(`/proc/self/fd/${w}`, 'r');
  } finally {
    fs.closeSync(w);
  }
}

/** compileRules - yarac into a memfd; returns a read-only descriptor of it, sealed, and its digest. */
async function compileRules(config: YaraConfig): Promise<{ fd: number; sha256: string; warnings: string[] }> {
  let st: fs.Stats;
  try {
    st = fs.statSync(config.rules);
  } catch (err) {
    throw new YaraSetupError(`YARA rules ${config.rules}: cannot read: ${codeOf(err)}`);
  }
  if (!st.isFile()) throw new YaraSetupError(`YARA rules ${config.rules}: not a regular file`);

  const out = native.memfdCreate('sluice-yara-rules');
  const canary = sealedMemfd('sluice-yara-canary', CANARY);
  try {
    let ran: Ran;
    try {
      // Explicit namespaces, so a ':' in the path is never read as one.
      ran = await runTool(config.compiler, ['-d', `${SIZE_VAR}=0`, `rules:${config.rules}`, 'sluice:/dev/fd/4', '/dev/fd/3'], [out, canary], COMPILE_TIMEOUT_MS);
    } catch (err) {
      throw new YaraSetupError(`YARA compiler ${config.compiler} cannot run: ${codeOf(err)}`);
    }
    if (ran.code !== 0 || ran.timedOut) {
      const why = ran.timedOut ? `timed out after ${COMPILE_TIMEOUT_MS} ms` : ran.signal ? `killed by ${ran.signal}` : `exit ${ran.code}`;
      throw new YaraSetupError(`YARA rules ${config.rules} do not compile (yarac ${why}): ${oneLineOf(ran.stderr) || '(no message)'}`);
    }
    const size = fs.fstatSync(out).size;
    if (size === 0) throw new YaraSetupError(`YARA compiler ${config.compiler} wrote no compiled rules`);
    native.addSeals(out, native.ALL_SEALS);
    const fd = fs.openSync(`/proc/self/fd/${out}`, 'r');
    const compiled = Buffer.alloc(size);
    fs.readSync(fd, compiled, 0, size, 0);
    const warnings = ran.stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '');
    return { fd, sha256: createHash('sha256').update(compiled).digest('hex'), warnings };
  } finally {
    fs.closeSync(out);
    fs.closeSync(canary);
  }
}

/** yaraVersion - "4.2.3", from yara --version. */
async function yaraVersion(command: string): Promise<string> {
  let ran: Ran;
  try {
    ran = await runTool(command, ['--version'], [], 30_000);
  } catch (err) {
    throw new YaraSetupError(`YARA command ${command} cannot run: ${codeOf(err)}`);
  }
  const v = ran.stdout.trim();
  if (ran.code !== 0 || !/^\d+\.\d+[\w.+~-]*$/.test(v)) {
    throw new YaraSetupError(`YARA command ${command} --version said ${JSON.stringify(v.slice(0, 80))} (exit ${ran.code})`);
  }
  return v;
}

/** yaraCheck - compile the rules, prove yara can scan a sealed memfd, and return the check. */
export async function yaraCheck(config: YaraConfig): Promise<YaraCheck> {
  const { timeoutMs, maxConcurrent, maxBytes } = config;
  if (!Number.isSafeInteger(timeoutMs) || timeoutMs < 1) throw new TypeError(`yaraCheck: timeoutMs must be a positive integer, got ${String(timeoutMs)}`);
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) throw new TypeError(`yaraCheck: maxBytes must be a non-negative integer, got ${String(maxBytes)}`);
  const slots = new Slots(maxConcurrent, 'yara');
  const version = await yaraVersion(config.command);
  const rules = await compileRules(config);
  const engine = `yara ${version}, rules sha256:${rules.sha256.slice(0, 16)}`;
  let closed = false;

  /** scan - one yara run over fd (size bytes); the outcome for the report. */
  async function scan(fd: number, size: number, signal: AbortSignal): Promise<CheckRun> {
    if (closed) throw new CheckUnavailable('the YARA check has been closed');
    const seconds = Math.max(1, Math.ceil(timeoutMs / 1000));
    let ran: Ran;
    try {
      ran = await runTool(config.command, ['-C', '-e', '-d', `${SIZE_VAR}=${size}`, '-a', String(seconds), '/dev/fd/3', TARGET], [rules.fd, fd], timeoutMs, signal);
    } catch (err) {
      throw new CheckUnavailable(`cannot run yara: ${codeOf(err)}`);
    }
    signal.throwIfAborted();
    if (ran.timedOut) return { outcome: 'error', reason: `scan error: yara did not finish within ${timeoutMs} ms`, engine };
    if (ran.overflow) return { outcome: 'error', reason: `scan error: yara printed more than ${OUTPUT_MAX} bytes`, engine };
    if (ran.code !== 0) {
      const why = ran.signal ? `killed by ${ran.signal}` : `exit ${ran.code}`;
      return { outcome: 'error', reason: `scan error: yara ${why}: ${oneLineOf(ran.stderr) || '(no message)'}`, engine };
    }
    if (ran.stderr.trim() !== '') return { outcome: 'error', reason: `scan error: yara warned, results may be incomplete: ${oneLineOf(ran.stderr)}`, engine };
    const out = parseYaraOutput(ran.stdout);
    if (!out.ok) return { outcome: 'error', reason: `scan error: ${out.error}`, engine };
    if (!out.seen) return { outcome: 'error', reason: `scan error: yara did not see the whole file (its ${size}-byte size rule did not match)`, engine };
    if (out.matched.length > 0) {
      return { outcome: 'fail', reason: `matched YARA rule${out.matched.length === 1 ? '' : 's'}: ${out.matched.join(', ')}`, engine };
    }
    return { outcome: 'pass', reason: 'no rule matched', engine };
  }

  // Self-test: the same path every file takes, on content of known size.
  const probeBytes = Buffer.from('sluice yara self-test\n');
  const probe = sealedMemfd('sluice-yara-selftest', probeBytes);
  try {
    const r = await scan(probe, probeBytes.length, new AbortController().signal);
    if (r.outcome === 'error') {
      throw new YaraSetupError(`YARA command ${config.command} cannot scan a sealed memfd through ${TARGET}: ${r.reason}`);
    }
  } catch (err) {
    fs.closeSync(rules.fd);
    throw err instanceof YaraSetupError ? err : new YaraSetupError(`YARA self-test failed: ${codeOf(err)}`);
  } finally {
    fs.closeSync(probe);
  }

  return {
    name: 'yara',
    // Backstop only: the slot wait and the scan each end by timeoutMs.
    timeoutMs: Math.min(2 * timeoutMs + 5_000, 2_147_483_647),
    engine,
    warnings: rules.warnings,
    async run(input: CheckInput, signal: AbortSignal): Promise<CheckRun> {
      if (input.size > maxBytes) {
        return { outcome: 'error', reason: `not scanned: ${input.size} bytes is more than transit.yara.maxBytes (${maxBytes})`, engine };
      }
      const release = await slots.acquire(timeoutMs, signal);
      try {
        return await scan(input.fd, input.size, signal);
      } finally {
        release();
      }
    },
    close() {
      if (closed) return;
      closed = true;
      fs.closeSync(rules.fd);
    },
  };
}
