/*
 * NAME
 *   status - `sluice status`: how the station is doing, for a person or a monitoring check
 *
 * SYNOPSIS
 *   sluice status [--config FILE | --dir DIR] [--json] [--max-age SECONDS] [--max-signature-age DAYS]
 *
 * DESCRIPTION
 *   Reads the status file each stage rewrites every status.intervalMs
 *   (core/src/status.ts) from status.dir/<stage>/<stage>.json: the
 *   configuration's (default /etc/sluice/sluice.json), or, with --dir, that
 *   of a `sluice dev --dir DIR`. It opens no socket and asks no stage
 *   anything: run by root or a member of the operators' group
 *   (status.group), it reads what the stages published.
 *
 *   A stage is up when its file says it is running, its process is alive
 *   (/proc/PID exists and started when the file says, so a reused pid does
 *   not count) and the file is fresh (rewritten within three intervals and
 *   ten seconds). Then: files waiting in the inbox, in ingress's spool, in
 *   flight, held for an operator; received, accepted and rejected since the
 *   stages started and in the last hour; the last delivery; each stage's
 *   last error-level log line; the signing key's id; the scanners' state.
 *
 * EXIT STATUS
 *   Nagios plugin conventions (the first line of the human output is the
 *   plugin's status line):
 *     0 OK        every stage up, nothing waits for a person
 *     1 WARNING   files held in spool/held/; the oldest spooled file older
 *                 than --max-age (default 3600 s); clamd's signatures older
 *                 than --max-signature-age (default 7 days); a stage whose
 *                 file is stale while its process lives
 *     2 CRITICAL  a stage down (no status file, stopped, failed, its
 *                 process gone); a scanner unreachable
 *     3 UNKNOWN   the status files cannot be read (permissions, no such
 *                 configuration, a malformed file), or a usage error
 *
 * SECURITY
 *   Every string from a status file goes through escapeForLog before it is
 *   printed: a compromised stage can write its own file, and it must not
 *   reach the operator's terminal with escape sequences.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { escapeForLog, parseConfigText, procStat, stageStatusDir, STATUS_STAGES, type StatusDoc, type StatusStage } from '@sluice/core';

/** The largest status file read; a stage's is about 1 KiB. */
export const MAX_STATUS_BYTES = 64 * 1024;

export const EXIT = { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 } as const;
export type Level = keyof typeof EXIT;

export interface Problem {
  level: Exclude<Level, 'OK'>;
  stage?: StatusStage;
  text: string;
}

export interface StageState {
  up: boolean;
  state: StatusDoc['state'] | 'missing' | 'unreadable';
  pid: number | null;
  since: string | null;
  updatedAt: string | null;
  lastError: StatusDoc['lastError'];
}

export interface StatusReport {
  status: Level;
  exitCode: number;
  dir: string;
  problems: Problem[];
  stages: Record<StatusStage, StageState>;
  files: {
    inbox: number | null;
    spooled: number | null;
    inFlight: number | null;
    held: number | null;
    oldestSpooled: string | null;
    sinceStart: { received: number | null; accepted: number | null; rejected: number | null };
    lastHour: { received: number | null; accepted: number | null; rejected: number | null };
  };
  lastDelivery: StatusDoc['lastDelivery'];
  keyId: string | null;
  scanners: StatusDoc['scanners'];
}

export interface Thresholds {
  maxAgeSeconds: number;
  maxSignatureAgeDays: number;
}

type Read = { doc: StatusDoc } | { missing: true } | { error: string; unknown: boolean };

/** readStatusFile - one stage's status document, read with a bound; never follows a FIFO or reads a device. */
export function readStatusFile(file: string): Read {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { missing: true };
    return { error: `cannot read ${file}: ${code ?? (err as Error).message}${code === 'EACCES' ? " (run as root or as a member of the operators' group, status.group)" : ''}`, unknown: true };
  }
  try {
    if (!fs.fstatSync(fd).isFile()) return { error: `${file} is not a regular file`, unknown: true };
    const buf = Buffer.alloc(MAX_STATUS_BYTES + 1);
    const n = fs.readSync(fd, buf, 0, buf.length, 0);
    if (n > MAX_STATUS_BYTES) return { error: `${file} is larger than ${MAX_STATUS_BYTES} bytes`, unknown: true };
    const doc = JSON.parse(buf.subarray(0, n).toString('utf8')) as StatusDoc;
    if (doc?.format !== 1 || typeof doc.pid !== 'number' || typeof doc.updatedAt !== 'string' || typeof doc.files !== 'object' || typeof doc.queues !== 'object') {
      return { error: `${file} is not a status file of format 1`, unknown: true };
    }
    return { doc };
  } catch (err) {
    return { error: `${file}: ${(err as Error).message}`, unknown: true };
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * alive - is `pid` the process that wrote the file: there, not a zombie (dead, not yet reaped by
 * its parent), and started when the file says (so a reused pid does not count)? null when /proc
 * cannot tell.
 */
export function alive(pid: number, pidStart: string | null): boolean | null {
  if (!fs.existsSync(`/proc/${pid}`)) return fs.existsSync('/proc/self') ? false : null;
  const st = procStat(pid);
  if (st === null) return null;
  if (st.state === 'Z' || st.state === 'X') return false;
  return pidStart === null ? null : st.start === pidStart;
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const sum = (...v: (number | null)[]): number | null => (v.every((x) => x === null) ? null : v.reduce<number>((a, x) => a + (x ?? 0), 0));
const ago = (iso: string, now: number): number => Math.round((now - Date.parse(iso)) / 1000);

/** assess - the report and its exit status, from the stages' documents (pure: tests feed it documents). */
export function assess(dir: string, reads: Record<StatusStage, Read>, now: number, t: Thresholds, isAlive = alive): StatusReport {
  const problems: Problem[] = [];
  const stages = {} as Record<StatusStage, StageState>;
  const docs: Partial<Record<StatusStage, StatusDoc>> = {};
  for (const stage of STATUS_STAGES) {
    const r = reads[stage];
    if ('missing' in r) {
      stages[stage] = { up: false, state: 'missing', pid: null, since: null, updatedAt: null, lastError: null };
      problems.push({ level: 'CRITICAL', stage, text: `${stage} down: no status file (never started, or status.dir is not where it writes)` });
      continue;
    }
    if ('error' in r) {
      stages[stage] = { up: false, state: 'unreadable', pid: null, since: null, updatedAt: null, lastError: null };
      problems.push({ level: r.unknown ? 'UNKNOWN' : 'CRITICAL', stage, text: r.error });
      continue;
    }
    const d = (docs[stage] = r.doc);
    const s: StageState = { up: false, state: d.state, pid: d.pid, since: d.startedAt, updatedAt: d.updatedAt, lastError: d.lastError ?? null };
    stages[stage] = s;
    const living = isAlive(d.pid, d.pidStart);
    const age = ago(d.updatedAt, now);
    const fresh = age <= (3 * (num(d.intervalMs) ?? 5000)) / 1000 + 10;
    if (d.state !== 'running') {
      problems.push({ level: 'CRITICAL', stage, text: `${stage} down: ${d.state} at ${d.updatedAt}${d.lastError ? ` (last error: ${d.lastError.event} ${d.lastError.reason})` : ''}` });
    } else if (living === false) {
      problems.push({ level: 'CRITICAL', stage, text: `${stage} down: process ${d.pid} is gone (its status file was last written ${age} s ago)` });
    } else if (!fresh) {
      // Alive but silent: a stuck event loop. With no /proc to ask, silence is all we know: down.
      problems.push({ level: living ? 'WARNING' : 'CRITICAL', stage, text: `${stage}: status file not rewritten for ${age} s${living ? ` although process ${d.pid} runs` : ''}` });
      s.up = living === true;
    } else s.up = true;
  }
  const ing = docs.ingress;
  const egr = docs.egress;
  const tra = docs.transit;
  const held = num(ing?.queues.held);
  if (held) problems.push({ level: 'WARNING', stage: 'ingress', text: `${held} file(s) held in ingress's spool/held/ for an operator (docs/operations.md)` });
  const oldest = ing?.oldest?.spooled ?? null;
  if (oldest && ago(oldest, now) > t.maxAgeSeconds) {
    problems.push({ level: 'WARNING', stage: 'ingress', text: `the oldest spooled file waits since ${oldest} (${ago(oldest, now)} s, over ${t.maxAgeSeconds} s)` });
  }
  const scanners = tra?.scanners ?? {};
  for (const [name, sc] of Object.entries(scanners)) {
    if (sc.up === false) problems.push({ level: 'CRITICAL', stage: 'transit', text: `scanner ${name} unreachable${sc.lastError ? `: ${sc.lastError}` : ''}; files wait for it` });
    if (sc.signaturesAt && (now - Date.parse(sc.signaturesAt)) / 86_400_000 > t.maxSignatureAgeDays) {
      problems.push({ level: 'WARNING', stage: 'transit', text: `scanner ${name}'s signatures date from ${sc.signaturesAt}, over ${t.maxSignatureAgeDays} days old` });
    }
  }
  const level: Level = problems.some((p) => p.level === 'UNKNOWN')
    ? 'UNKNOWN'
    : problems.some((p) => p.level === 'CRITICAL')
      ? 'CRITICAL'
      : problems.some((p) => p.level === 'WARNING')
        ? 'WARNING'
        : 'OK';
  const count = (d: StatusDoc | undefined, key: 'files' | 'lastHour', outcome: string) => num(d?.[key]?.[outcome]);
  const received = (key: 'files' | 'lastHour') => sum(count(ing, key, 'picked-up'), count(ing, key, 'refused'));
  return {
    status: level,
    exitCode: EXIT[level],
    dir,
    problems,
    stages,
    files: {
      inbox: num(ing?.queues.inbox),
      spooled: num(ing?.queues.spooled),
      inFlight: sum(num(ing?.queues.in_flight), num(tra?.queues.in_flight), num(egr?.queues.in_flight)),
      held,
      oldestSpooled: oldest,
      sinceStart: { received: received('files'), accepted: count(egr, 'files', 'accepted'), rejected: count(egr, 'files', 'rejected') },
      lastHour: { received: received('lastHour'), accepted: count(egr, 'lastHour', 'accepted'), rejected: count(egr, 'lastHour', 'rejected') },
    },
    lastDelivery: egr?.lastDelivery ?? null,
    keyId: egr?.keyId ?? null,
    scanners,
  };
}

/** readStatus - read every stage's file under `dir` (status.dir) and assess them. */
export function readStatus(dir: string, t: Thresholds, now = Date.now()): StatusReport {
  const reads = Object.fromEntries(STATUS_STAGES.map((s) => [s, readStatusFile(path.join(stageStatusDir(dir, s), `${s}.json`))])) as Record<StatusStage, Read>;
  return assess(dir, reads, now, t);
}

const e = (s: unknown): string => escapeForLog(String(s ?? ''), 200);
const n = (v: number | null): string => (v === null ? '?' : String(v));

/** formatHuman - the report for a person; the first line is a Nagios status line. */
export function formatHuman(r: StatusReport, now = Date.now()): string {
  const down = STATUS_STAGES.filter((s) => !r.stages[s].up);
  const head = `SLUICE ${r.status} - ${down.length === 0 ? 'all stages up' : `${down.join(', ')} down`}; inbox ${n(r.files.inbox)}, spooled ${n(r.files.spooled)}, in flight ${n(r.files.inFlight)}, held ${n(r.files.held)}`;
  const lines = [head, '', 'stages:'];
  for (const s of STATUS_STAGES) {
    const st = r.stages[s];
    const what = st.up ? `up since ${e(st.since)} (pid ${st.pid}, ${ago(st.since!, now)} s)` : `DOWN (${e(st.state)}${st.pid ? `, pid ${st.pid}` : ''})`;
    const err = st.lastError ? `last error ${e(st.lastError.time)} ${e(st.lastError.event)}${st.lastError.reason ? `: ${e(st.lastError.reason)}` : ''}` : 'no error since start';
    lines.push(`  ${s.padEnd(8)} ${what}; ${err}`);
  }
  const f = r.files;
  lines.push('', 'files:');
  lines.push(`  inbox ${n(f.inbox)}, spooled ${n(f.spooled)}${f.oldestSpooled ? ` (oldest since ${e(f.oldestSpooled)})` : ''}, in flight ${n(f.inFlight)}, held ${n(f.held)}`);
  lines.push(`  since the stages started: received ${n(f.sinceStart.received)}, accepted ${n(f.sinceStart.accepted)}, rejected ${n(f.sinceStart.rejected)}`);
  lines.push(`  in the last hour:         received ${n(f.lastHour.received)}, accepted ${n(f.lastHour.accepted)}, rejected ${n(f.lastHour.rejected)}`);
  lines.push(`  last delivery: ${r.lastDelivery ? `${e(r.lastDelivery.time)} ${e(r.lastDelivery.verdict)} ${e(r.lastDelivery.stored)}` : 'none since egress started'}`);
  lines.push('', `signing key: ${r.keyId ? e(r.keyId) : '?'}`);
  const sc = Object.entries(r.scanners);
  lines.push(
    `scanners: ${
      sc.length === 0
        ? 'none reported (none enabled, or none asked yet)'
        : sc
            .map(([name, s]) => `${e(name)} ${s.up === null ? 'not asked yet' : s.up ? 'up' : 'UNREACHABLE'}${s.engine ? ` (${e(s.engine)})` : ''}${s.signaturesAt ? `, signatures of ${e(s.signaturesAt)}` : ''}, ${s.errors} error(s)`)
            .join('; ')
    }`,
  );
  if (r.problems.length > 0) {
    lines.push('', 'needs a person:');
    for (const p of r.problems) lines.push(`  ${p.level} ${e(p.text)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** statusDirOf - status.dir of a configuration file (the stages' own). */
export function statusDirOf(configFile: string): string {
  return parseConfigText(fs.readFileSync(configFile, 'utf8'), configFile).status.dir;
}
