/*
 * NAME
 *   status - what a stage publishes about itself: a status file and a metrics file
 *
 * SYNOPSIS
 *   station.file('done', size);                       // a file reached an outcome (sluice_files_total)
 *   station.queue('spooled', () => fwd.size);         // a queue gauge, read when written
 *   station.queueAge('spooled', () => oldestMs);      // the oldest entry's time, or null
 *   station.delivered('accepted', receivedAt, stored);// egress: latency histogram, last delivery
 *   station.scanner('clamav', { up: true, engine }); station.scannerError('clamav', reason);
 *   station.keyId(id);                                // egress: the signing key in use
 *
 *   // runDaemon does these:
 *   station.init('ingress');                          // before main: the series of this stage
 *   const pub = startStatus(cfg.status, log);         // after main: write now and every intervalMs
 *   pub.stop('stopped');                              // the last write, at exit
 *
 * DESCRIPTION
 *   A stage opens no socket to say how it is doing. Every status.intervalMs,
 *   and soon after an event an operator waits for (a delivery, a held file,
 *   an error), it rewrites two files in its own directory status.dir/<stage>/:
 *
 *     <stage>.json   the status document `sluice status` reads (StatusDoc)
 *     <stage>.prom   the same numbers in the Prometheus text format, for
 *                    node_exporter's textfile collector
 *
 *   Both are replaced by a rename (metrics.ts, writeAtomic), mode 0640, in a
 *   directory of mode 0750 (2750 with status.group): only the stage's user
 *   and the operators' group read them. Each stage writes only in its own
 *   directory: no file is shared between stages, so the status files are no
 *   channel from one stage to another. node_exporter reads one directory;
 *   status.dir holds a link to each stage's .prom (deploy/tmpfiles.d,
 *   `sluice dev`).
 *
 *   Until init() the recording calls do nothing, so the stage modules run
 *   unchanged in unit tests. Every label value comes from a fixed list in
 *   this file (the outcomes, queues and scanners below), never from a name
 *   or a peer, so the series are bounded (docs/capacity.md).
 *
 *   The status document carries what the metrics cannot: the pid and its
 *   start time in /proc (so `sluice status` can tell a live stage from a
 *   stale file or a reused pid), the last error-level log line, the last
 *   delivery, and the counts of the last hour (60 one-minute buckets).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Registry, writeAtomic, type Counter, type Gauge, type Histogram } from './metrics.js';
import { setLogObserver, type Logger } from './log.js';
import { escapeForLog } from './names.js';

export const STATUS_STAGES = ['ingress', 'transit', 'egress'] as const;
export type StatusStage = (typeof STATUS_STAGES)[number];

/** The outcomes each stage counts in sluice_files_total; the log event that goes with each is in docs/operations.md. */
export const FILE_OUTCOMES = {
  ingress: ['picked-up', 'refused', 'done', 'held', 'retry'],
  transit: ['accepted', 'rejected', 'retry', 'failed'],
  egress: ['accepted', 'rejected', 'duplicate', 'failed'],
} as const satisfies Record<StatusStage, readonly string[]>;
export type FileOutcome<S extends StatusStage = StatusStage> = (typeof FILE_OUTCOMES)[S][number];

/** The queues each stage reports in sluice_queue_files. */
export const QUEUES = {
  ingress: ['inbox', 'spooled', 'in_flight', 'held'],
  transit: ['in_flight'],
  egress: ['in_flight'],
} as const satisfies Record<StatusStage, readonly string[]>;
export type QueueName = (typeof QUEUES)[StatusStage][number];

/** The scanners transit reports on (the checks that depend on an engine outside transit). */
export const SCANNERS = ['clamav', 'yara'] as const;
export type ScannerName = (typeof SCANNERS)[number];

/** Buckets of sluice_transfer_duration_seconds: from a second's fraction (idle station) to hours (a scanner down). */
export const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400];

const LOG_LEVELS = ['warn', 'error', 'fatal'] as const;
const MINUTES = 60;

/** StatusDoc - the status file's content (format 1). */
export interface StatusDoc {
  format: 1;
  stage: StatusStage;
  state: 'running' | 'stopped' | 'failed';
  pid: number;
  /** Field 22 of /proc/PID/stat (start time in clock ticks since boot), or null when /proc could not be read. */
  pidStart: string | null;
  version: string;
  startedAt: string;
  updatedAt: string;
  intervalMs: number;
  files: Record<string, number>;
  lastHour: Record<string, number>;
  bytes: number;
  queues: Record<string, number>;
  /** When the oldest entry of each queue that knows it arrived. */
  oldest: Record<string, string | null>;
  lastDelivery: { time: string; verdict: string; stored: string } | null;
  lastError: { time: string; level: string; event: string; reason: string } | null;
  keyId: string | null;
  scanners: Record<string, { up: boolean | null; engine: string; signaturesAt: string | null; errors: number; lastError: string | null }>;
}

/** procStat - the state (field 3) and start time (field 22) of /proc/PID/stat, or null. */
export function procStat(pid: number | 'self'): { state: string; start: string } | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[0] && fields[19] ? { state: fields[0], start: fields[19] } : null;
  } catch {
    return null;
  }
}

/** procStart - field 22 of /proc/PID/stat (the process's start time in clock ticks since boot), or null. */
export function procStart(pid: number | 'self'): string | null {
  return procStat(pid)?.start ?? null;
}

/** clamdSignatureTime - the database date in clamd's VERSION answer ("ClamAV 1.4.6/27400/Tue Dec  3 09:41:04 2024"), or null. */
export function clamdSignatureTime(engine: string): string | null {
  const m = /^ClamAV [^/]+\/\d+\/(.+)$/.exec(engine.trim());
  if (!m) return null;
  const t = Date.parse(`${m[1]!.replace(/\s+/g, ' ')} UTC`);
  return Number.isFinite(t) ? new Date(t).toISOString() : null;
}

interface StationMetrics {
  files: Counter;
  bytes: Counter;
  queue: Gauge;
  oldest: Gauge;
  start: Gauge;
  info: Gauge;
  logEvents: Counter;
  duration: Histogram | null;
  scannerUp: Gauge | null;
  scannerErrors: Counter | null;
  signatures: Gauge | null;
  key: Gauge | null;
}

/** Station - this process's numbers; a no-op until init(). */
export class Station {
  stage: StatusStage | null = null;
  registry = new Registry();
  private m: StationMetrics | null = null;
  private startedAt = new Date();
  private version = '';
  private readonly queues = new Map<string, () => number>();
  private readonly ages = new Map<string, () => number | null>();
  /** Per-minute counts of each outcome: [minute since epoch, counts]. */
  private ring: { minute: number; counts: Map<string, number> }[] = [];
  private lastDelivery: StatusDoc['lastDelivery'] = null;
  private lastError: StatusDoc['lastError'] = null;
  private key: string | null = null;
  private readonly scanners = new Map<ScannerName, StatusDoc['scanners'][string]>();
  /** Set by the publisher: an event worth writing the files soon for. */
  onEvent: (() => void) | null = null;
  /** Set by the publisher: a fatal line; write now, the process exits next. */
  onFatal: (() => void) | null = null;

  /** init - declare this stage's series; from now on the recording calls count. */
  init(stage: StatusStage, version: string, now = new Date()): void {
    this.stage = stage;
    this.startedAt = now;
    this.version = version;
    const r = (this.registry = new Registry());
    const st = { stage: [stage] };
    const m: StationMetrics = {
      files: r.counter('sluice_files_total', 'Files that reached an outcome at this stage, since it started.', { ...st, outcome: FILE_OUTCOMES[stage] }),
      bytes: r.counter('sluice_bytes_total', 'Bytes of the files this stage picked up (ingress), checked (transit) or delivered to the outbox (egress), since it started.', st),
      queue: r.gauge('sluice_queue_files', 'Files waiting in each of the stage\'s queues.', { ...st, queue: QUEUES[stage] }),
      oldest: r.gauge('sluice_queue_oldest_timestamp_seconds', 'When the oldest file of the queue arrived (0: the queue is empty).', { ...st, queue: ['spooled'] }),
      start: r.gauge('sluice_stage_start_time_seconds', 'When this stage process started, seconds since the epoch.', st),
      info: r.gauge('sluice_stage_info', 'The software version of the stage; always 1.', { ...st, version: [version] }),
      logEvents: r.counter('sluice_log_events_total', 'Log lines at warn level and above, since the stage started.', { ...st, level: LOG_LEVELS }),
      duration: null,
      scannerUp: null,
      scannerErrors: null,
      signatures: null,
      key: null,
    };
    m.start.set({ stage }, now.getTime() / 1000);
    m.info.set({ stage, version }, 1);
    for (const outcome of FILE_OUTCOMES[stage]) m.files.zero({ stage, outcome });
    m.bytes.zero({ stage });
    for (const level of LOG_LEVELS) m.logEvents.zero({ stage, level });
    if (stage === 'egress') {
      m.duration = r.histogram('sluice_transfer_duration_seconds', 'From pickup at ingress to the signed report at egress, by verdict.', DURATION_BUCKETS, { verdict: ['accepted', 'rejected'] });
      m.duration.zero({ verdict: 'accepted' });
      m.duration.zero({ verdict: 'rejected' });
    }
    if (stage === 'transit') {
      m.scannerUp = r.gauge('sluice_scanner_up', 'Whether the scanner answered last time it was asked (1) or not (0).', { scanner: SCANNERS });
      m.scannerErrors = r.counter('sluice_scanner_errors_total', 'Scans that could not give an answer (the file was held for retry or rejected as a scan error).', { scanner: SCANNERS });
      m.signatures = r.gauge('sluice_scanner_signatures_timestamp_seconds', "The date of the scanner's signature database, as it reports it.", { scanner: ['clamav'] });
    }
    this.m = m;
    setLogObserver((level, obj) => this.logged(level, obj));
  }

  /** file - one file reached `outcome` here; `bytes` counts into sluice_bytes_total. */
  file(outcome: FileOutcome, bytes?: number, now = Date.now()): void {
    if (!this.m || !this.stage) return;
    this.m.files.inc({ stage: this.stage, outcome });
    if (bytes !== undefined && bytes > 0) this.m.bytes.inc({ stage: this.stage }, bytes);
    const minute = Math.floor(now / 60_000);
    let slot = this.ring[this.ring.length - 1];
    if (!slot || slot.minute !== minute) {
      this.ring.push((slot = { minute, counts: new Map() }));
      this.ring = this.ring.filter((s) => s.minute > minute - MINUTES);
    }
    slot.counts.set(outcome, (slot.counts.get(outcome) ?? 0) + 1);
    if (outcome === 'held' || outcome === 'failed') this.onEvent?.();
  }

  /** queue - a gauge of this stage's queue, read each time the files are written. */
  queue(name: QueueName, read: () => number): void {
    if (!this.m || !this.stage) return;
    this.queues.set(name, read);
    this.m.queue.set({ stage: this.stage, queue: name }, read);
  }

  /** queueAge - when the oldest entry of a queue arrived (ms since the epoch), or null when it is empty. */
  queueAge(name: 'spooled', read: () => number | null): void {
    if (!this.m || !this.stage) return;
    this.ages.set(name, read);
    this.m.oldest.set({ stage: this.stage, queue: name }, () => (read() ?? 0) / 1000);
  }

  /** delivered - egress made an outcome durable: the time since pickup, and the last delivery. */
  delivered(verdict: 'accepted' | 'rejected', receivedAt: string, stored: string, now = Date.now()): void {
    if (!this.m) return;
    const t = Date.parse(receivedAt);
    if (Number.isFinite(t) && t <= now) this.m.duration?.observe({ verdict }, (now - t) / 1000);
    this.lastDelivery = { time: new Date(now).toISOString(), verdict, stored: escapeForLog(stored, 256) };
    this.onEvent?.();
  }

  /** scanner - a scanner answered (up) or could not be reached; `engine` names its version when known. */
  scanner(name: ScannerName, state: { up: boolean; engine?: string }): void {
    if (!this.m?.scannerUp) return;
    const s = this.scannerState(name);
    const changed = s.up !== state.up;
    s.up = state.up;
    if (state.engine) {
      s.engine = escapeForLog(state.engine, 128);
      if (name === 'clamav') {
        s.signaturesAt = clamdSignatureTime(state.engine);
        if (s.signaturesAt) this.m.signatures!.set({ scanner: 'clamav' }, Date.parse(s.signaturesAt) / 1000);
      }
    }
    this.m.scannerUp.set({ scanner: name }, state.up ? 1 : 0);
    if (changed) this.onEvent?.();
  }

  /** scanResults - transit's check results: each scanner's answer (up, engine) or error. */
  scanResults(results: readonly { name: string; outcome: string; reason: string; engine: string; retry?: true }[]): void {
    for (const r of results) {
      const name = SCANNERS.find((s) => s === r.name);
      if (!name) continue;
      if (r.outcome === 'error') {
        this.scannerError(name, r.reason);
        if (r.retry) this.scanner(name, { up: false });
      } else this.scanner(name, { up: true, engine: r.engine });
    }
  }

  /** scannerError - a scan gave no answer (`reason` says why). */
  scannerError(name: ScannerName, reason: string): void {
    if (!this.m?.scannerErrors) return;
    const s = this.scannerState(name);
    s.errors++;
    s.lastError = escapeForLog(reason, 256);
    this.m.scannerErrors.inc({ scanner: name });
  }

  private scannerState(name: ScannerName) {
    let s = this.scanners.get(name);
    if (!s) {
      this.scanners.set(name, (s = { up: null, engine: '', signaturesAt: null, errors: 0, lastError: null }));
      this.m!.scannerErrors!.zero({ scanner: name });
    }
    return s;
  }

  /** keyId - egress: the id of the signing key it signs with (an info metric). */
  keyId(id: string): void {
    if (!this.m) return;
    this.key = id;
    this.m.key = this.registry.gauge('sluice_signing_key_info', 'The id of the key egress signs reports with; always 1.', { key_id: [id] });
    this.m.key.set({ key_id: id }, 1);
  }

  /** logged - the log observer: count warn and above, remember the last error. */
  private logged(level: number, obj: Record<string, unknown>): void {
    if (!this.m || !this.stage) return;
    const name = level >= 60 ? 'fatal' : level >= 50 ? 'error' : level >= 40 ? 'warn' : null;
    if (!name) return;
    this.m.logEvents.inc({ stage: this.stage, level: name });
    if (name === 'warn') return;
    const str = (v: unknown) => (typeof v === 'string' ? escapeForLog(v, 256) : '');
    this.lastError = { time: new Date().toISOString(), level: name, event: str(obj.event), reason: str(obj.reason) };
    if (name === 'fatal') this.onFatal?.();
    else this.onEvent?.();
  }

  /** doc - the status document now. */
  doc(state: StatusDoc['state'], intervalMs: number, now = Date.now()): StatusDoc {
    const stage = this.stage!;
    const files: Record<string, number> = {};
    const lastHour: Record<string, number> = {};
    const minute = Math.floor(now / 60_000);
    for (const outcome of FILE_OUTCOMES[stage]) {
      files[outcome] = this.m!.files.get({ stage, outcome });
      lastHour[outcome] = this.ring.filter((s) => s.minute > minute - MINUTES).reduce((n, s) => n + (s.counts.get(outcome) ?? 0), 0);
    }
    const read = <T>(f: () => T, fallback: T): T => {
      try {
        return f();
      } catch {
        return fallback;
      }
    };
    return {
      format: 1,
      stage,
      state,
      pid: process.pid,
      pidStart: procStart('self'),
      version: this.version,
      startedAt: this.startedAt.toISOString(),
      updatedAt: new Date(now).toISOString(),
      intervalMs,
      files,
      lastHour,
      bytes: this.m!.bytes.get({ stage }),
      queues: Object.fromEntries([...this.queues].map(([k, f]) => [k, read(f, -1)])),
      oldest: Object.fromEntries([...this.ages].map(([k, f]) => [k, read(() => { const t = f(); return t === null ? null : new Date(t).toISOString(); }, null)])),
      lastDelivery: this.lastDelivery,
      lastError: this.lastError,
      keyId: this.key,
      scanners: Object.fromEntries(this.scanners),
    };
  }
}

/** The one Station of this process. */
export const station = new Station();

/** StatusSettings - the configuration's `status` section. */
export interface StatusSettings {
  dir: string;
  group: string | number | null;
  intervalMs: number;
}

/** resolveGid - a group name or gid to a gid, through /etc/group; throws naming the group. */
export function resolveGid(group: string | number, file = '/etc/group'): number {
  if (typeof group === 'number') return group;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new Error(`unknown group ${JSON.stringify(group)} (not in ${file})`);
}

/** stageStatusDir - where a stage writes its files. */
export function stageStatusDir(dir: string, stage: StatusStage): string {
  return path.join(dir, stage);
}

/** The shortest delay between two writes asked for by events (a burst of deliveries writes once). */
const EVENT_WRITE_DELAY_MS = 250;

/** StatusPublisher - writes the stage's two files now, every intervalMs, soon after events, and once at exit. */
export interface StatusPublisher {
  write(state?: StatusDoc['state']): void;
  stop(state: StatusDoc['state']): void;
}

/**
 * startStatus - make the stage's directory (mode 0750, 2750 with a group) and start writing.
 * A directory that cannot be made or given its group is said once (`status-unavailable`) and
 * the stage runs on without publishing: the status is for operators, never a reason to stop files.
 */
export function startStatus(s: StatusSettings, log: Logger, st: Station = station): StatusPublisher {
  const stage = st.stage!;
  const dir = stageStatusDir(s.dir, stage);
  let usable = true;
  try {
    const mode = s.group === null ? 0o750 : 0o2750;
    if (!fs.existsSync(dir)) fs.mkdirSync(dir, { mode }); // not recursive: status.dir itself is the operator's (tmpfiles.d)
    const info = fs.lstatSync(dir);
    if (!info.isDirectory()) throw new Error(`${dir} is not a directory`);
    if (info.uid !== process.getuid!()) throw new Error(`${dir} is owned by uid ${info.uid}, not by this stage (uid ${process.getuid!()})`);
    if (s.group !== null) {
      const gid = resolveGid(s.group);
      if (info.gid !== gid) fs.chownSync(dir, -1, gid);
    }
    if ((info.mode & 0o7777) !== mode) fs.chmodSync(dir, mode);
    for (const name of fs.readdirSync(dir)) if (name.startsWith('.tmp-')) fs.rmSync(path.join(dir, name), { force: true });
  } catch (err) {
    usable = false;
    log.warn({ event: 'status-unavailable', dir, reason: (err as NodeJS.ErrnoException).code ?? String(err) }, `status files cannot be written in ${dir}; the stage runs on without them`);
  }
  let failing = false;
  let state: StatusDoc['state'] = 'running';
  const write = (next: StatusDoc['state'] = state) => {
    state = next;
    if (!usable) return;
    try {
      writeAtomic(dir, `${stage}.prom`, st.registry.exposition(), 0o640);
      writeAtomic(dir, `${stage}.json`, `${JSON.stringify(st.doc(state, s.intervalMs))}\n`, 0o640);
      failing = false;
    } catch (err) {
      if (!failing) log.warn({ event: 'status-write-failed', dir, reason: (err as NodeJS.ErrnoException).code ?? String(err) }, 'could not write the status files');
      failing = true;
    }
  };
  let soon: NodeJS.Timeout | null = null;
  st.onEvent = () => {
    soon ??= setTimeout(() => {
      soon = null;
      write();
    }, EVENT_WRITE_DELAY_MS).unref();
  };
  st.onFatal = () => write('failed');
  const timer = setInterval(() => write(), s.intervalMs).unref();
  write();
  return {
    write,
    stop(final) {
      clearInterval(timer);
      if (soon) clearTimeout(soon);
      st.onEvent = null;
      write(final);
    },
  };
}
