/*
 * NAME
 *   config - the one configuration file, its schema, defaults and errors
 *
 * SYNOPSIS
 *   const cfg = loadConfig('/etc/sluice/sluice.json');   // throws ConfigError
 *   const problems = checkConfigText(text);              // for `sluice config check`
 *
 * DESCRIPTION
 *   One JSON file configures all three stages; each stage reads its own
 *   section and the shared ones. Every key has a type, a default and a line
 *   of documentation (docs/configuration.md lists them all; a test keeps the
 *   two in step). Unknown keys are errors: a typo must not silently turn a
 *   check off. Errors name the key path and what was wrong, and all of them
 *   are reported at once.
 *
 *   Users may be given by name (resolved through /etc/passwd) or by uid.
 *   Modes are strings of octal digits ("0660"), since JSON has no octal.
 *
 *   Then the limits must hold together (budgetProblems): a file the limits
 *   admit must fit somewhere transit can hold it, and what transit may hold
 *   in RAM must fit in its unit's MemoryMax (docs/capacity.md). Each
 *   problem names every key it involves.
 */
import * as fs from 'node:fs';
import { largestFixedRecord } from '@sluice/protocol';

type Spec =
  | { kind: 'string'; default: string; doc: string; nonEmpty?: boolean }
  | { kind: 'path'; default: string; doc: string }
  | { kind: 'int'; default: number; min: number; max: number; doc: string }
  | { kind: 'bool'; default: boolean; doc: string }
  | { kind: 'mode'; default: number; doc: string }
  | { kind: 'user'; default: string | number | null; doc: string }
  | { kind: 'group'; default: string | number | null; doc: string }
  | { kind: 'users'; default: (string | number)[]; doc: string }
  | { kind: 'strings'; default: string[]; doc: string; pattern?: RegExp }
  | { kind: 'section'; fields: Record<string, Spec>; doc: string };

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** The schema: every configuration key Sluice knows. */
export const SCHEMA: Record<string, Spec> = {
  station: { kind: 'string', default: 'sluice', nonEmpty: true, doc: 'Station id written into every report.' },
  limits: {
    kind: 'section',
    doc: 'Limits every stage enforces on its own.',
    fields: {
      maxFileBytes: { kind: 'int', default: 4 * GiB, min: 0, max: Number.MAX_SAFE_INTEGER, doc: 'Largest file accepted, in bytes.' },
      maxNameBytes: { kind: 'int', default: 1024, min: 16, max: 4096, doc: 'Longest uploaded name carried between stages, in UTF-8 bytes.' },
      maxRecordBytes: { kind: 'int', default: 64 * KiB, min: 1024, max: 1 * MiB, doc: 'Largest protocol record accepted between stages.' },
    },
  },
  ingress: {
    kind: 'section',
    doc: 'The ingress daemon: watches the inbox, spools, forwards to transit.',
    fields: {
      inbox: { kind: 'path', default: '/var/lib/sluice/drop/inbox', doc: 'Directory uploads arrive in.' },
      spool: { kind: 'path', default: '/var/lib/sluice/ingress', doc: 'Ingress-private spool (0700).' },
      transitSocket: { kind: 'path', default: '/run/sluice/transit.sock', doc: "Transit's socket." },
      transitUser: { kind: 'user', default: 'sluice-transit', doc: 'User transit must run as; null skips the check.' },
      rescanIntervalMs: { kind: 'int', default: 30_000, min: 100, max: 3_600_000, doc: 'Full rescan of the inbox, besides inotify.' },
      recheckIntervalMs: { kind: 'int', default: 1_000, min: 50, max: 60_000, doc: 'How often a file still open for writing is checked again.' },
      spoolBytes: { kind: 'int', default: 32 * GiB, min: 1 * MiB, max: Number.MAX_SAFE_INTEGER, doc: 'Bytes of uploads the spool may hold at once (what fstat says of each, spooled and not yet acknowledged); beyond it new uploads wait in the inbox. At least limits.maxFileBytes; give the spool that much free disk.' },
      maxQueuedNames: { kind: 'int', default: 10_000, min: 10, max: 1_000_000, doc: 'Most inbox names ingress holds in memory, waiting for a look (about 1 KiB each for long names); a rescan stops reading the inbox there, and the rest are found by a later one.' },
      maxInFlight: { kind: 'int', default: 32, min: 1, max: 1024, doc: 'Transfers sent to transit and not yet acknowledged.' },
      ackTimeoutMs: { kind: 'int', default: 600_000, min: 1_000, max: 86_400_000, doc: 'Time to wait for the final ack before resending.' },
      retryDelayMs: { kind: 'int', default: 5_000, min: 10, max: 3_600_000, doc: 'Delay before a transfer that got no ack or a RETRY is sent again.' },
    },
  },
  transit: {
    kind: 'section',
    doc: 'The transit daemon: private sealed copy, checks, verdict.',
    fields: {
      socket: { kind: 'path', default: '/run/sluice/transit.sock', doc: 'Socket transit listens on (ignored under socket activation).' },
      socketMode: { kind: 'mode', default: 0o660, doc: 'Mode of the socket file it creates.' },
      allowUsers: { kind: 'users', default: ['sluice-ingress'], doc: 'Users allowed to connect (ingress).' },
      egressSocket: { kind: 'path', default: '/run/sluice/egress.sock', doc: "Egress's socket." },
      egressUser: { kind: 'user', default: 'sluice-egress', doc: 'User egress must run as; null skips the check.' },
      maxInFlight: { kind: 'int', default: 4, min: 1, max: 1024, doc: 'Transfers copied or checked at once.' },
      maxForwarding: { kind: 'int', default: 32, min: 1, max: 1024, doc: "Checked transfers handed to egress and not yet acknowledged, each holding its sealed copy (in bytes within transit.copyMemoryBytes and transit.copyDiskBytes); at most egress.maxInFlight. Egress's log signs one tree head for the reports ready at once, so more here means fewer signatures per report." },
      ackTimeoutMs: { kind: 'int', default: 300_000, min: 1_000, max: 86_400_000, doc: "Time to wait for egress's ack." },
      checkTimeoutMs: { kind: 'int', default: 60_000, min: 10, max: 3_600_000, doc: 'Timeout of each content check.' },
      state: { kind: 'path', default: '/var/lib/sluice/transit', doc: 'Transit-private directory (0700) for the copies RAM cannot hold: nameless files (O_TMPFILE), never linked.' },
      memoryMaxBytes: { kind: 'int', default: 1 * GiB, min: 64 * MiB, max: Number.MAX_SAFE_INTEGER, doc: "Transit's memory limit: its unit's MemoryMax= (1G in deploy/sluice-transit.service); the check keeps transit's RAM within it." },
      copyMemoryBytes: { kind: 'int', default: 512 * MiB, min: 0, max: Number.MAX_SAFE_INTEGER, doc: 'Bytes of private copies transit may hold in RAM (sealed memfds) at once.' },
      copyDiskBytes: { kind: 'int', default: 16 * GiB, min: 0, max: Number.MAX_SAFE_INTEGER, doc: 'Bytes of private copies transit may hold on disk, in transit.state, at once.' },
      copyWaitMs: { kind: 'int', default: 60_000, min: 100, max: 3_600_000, doc: 'How long a file waits for room in RAM or on disk before it is answered RETRY.' },
      allowTypes: {
        kind: 'strings',
        default: ['png', 'jpg', 'gif', 'webp', 'pdf', 'txt', 'csv', 'json'],
        pattern: /^[a-z0-9]{1,16}(\.[a-z0-9]{1,8})?$/,
        doc: 'Content types allowed, by content (see docs/checks.md); scripts and markup (shell, batch, html, svg, ...) only when listed by name.',
      },
      extensionMatch: { kind: 'bool', default: true, doc: "Reject files whose name's extension disagrees with their content." },
      archives: {
        kind: 'section',
        doc: 'Looking inside zip, tar, tar.gz and gz files: every member held to the rules of a file (docs/checks.md, "Archives").',
        fields: {
          enabled: { kind: 'bool', default: true, doc: "Inspect archives (the 'archive' check); other archive formats (7z, rar, xz, ...) are refused unless listed in allowOpaque." },
          allowOpaque: { kind: 'strings', default: [], pattern: /^[a-z0-9]{1,16}(\.[a-z0-9]{1,8})?$/, doc: 'Archive types passed whole, without looking inside (e.g. "7z"); each must also be in transit.allowTypes.' },
          maxDepth: { kind: 'int', default: 3, min: 1, max: 8, doc: 'Archives opened one inside another, the outermost counting 1; an archive nested deeper is refused.' },
          maxMembers: { kind: 'int', default: 10_000, min: 1, max: 1_000_000, doc: 'Members (files and directories, nested ones included) one upload may hold.' },
          maxExpandedBytes: { kind: 'int', default: 4 * GiB, min: 0, max: Number.MAX_SAFE_INTEGER, doc: 'Bytes all members of one upload may expand to, nested archives included.' },
          maxRatio: { kind: 'int', default: 100, min: 1, max: 1_000_000, doc: "Most bytes expanded per byte of the upload, over everything inside it (checked beyond the first MiB)." },
          maxMemberRatio: { kind: 'int', default: 200, min: 1, max: 1_000_000, doc: 'Most bytes one member may expand to per compressed byte (checked beyond its first MiB).' },
          maxNameBytes: { kind: 'int', default: 1024, min: 16, max: 65_535, doc: "Longest member path, in UTF-8 bytes." },
          maxSpillBytes: { kind: 'int', default: 256 * MiB, min: 0, max: Number.MAX_SAFE_INTEGER, doc: 'Bytes of nested zips one inspection may write to nameless files in transit.state at once (a zip is read from its end, so a nested one is written out first); a larger nested zip is refused.' },
        },
      },
      clamav: {
        kind: 'section',
        doc: 'ClamAV through a running clamd (docs/scanners.md).',
        fields: {
          enabled: { kind: 'bool', default: false, doc: 'Scan every file with clamd; when true, a file clamd did not pass is never accepted.' },
          socket: { kind: 'path', default: '/run/clamav/clamd.ctl', doc: "clamd's local socket (FILDES: the sealed copy's descriptor is passed)." },
          host: { kind: 'string', default: '', doc: 'A remote clamd host name or address; when set, TCP INSTREAM is used instead of the socket.' },
          port: { kind: 'int', default: 3310, min: 1, max: 65535, doc: "clamd's TCP port (with host)." },
          timeoutMs: { kind: 'int', default: 60_000, min: 100, max: 3_600_000, doc: 'Per-scan timeout; a scan slot is also waited for at most this long. Either expiring holds the file for retry, unless clamd still answers after the scan timed out: then the file is rejected as a scan error.' },
          maxConcurrent: { kind: 'int', default: 4, min: 1, max: 256, doc: 'Scans sent to clamd at once.' },
          maxBytes: { kind: 'int', default: 25 * MiB, min: 0, max: Number.MAX_SAFE_INTEGER, doc: "Largest file sent to clamd; larger files are rejected as a scan error (keep it at most clamd's MaxFileSize, MaxScanSize and, over TCP, StreamMaxLength)." },
        },
      },
      yara: {
        kind: 'section',
        doc: "YARA rules, run with Debian's yara command (docs/scanners.md).",
        fields: {
          enabled: { kind: 'bool', default: false, doc: 'Scan every file with the YARA rules; a rule that matches rejects the file.' },
          rules: { kind: 'path', default: '/etc/sluice/yara/rules.yar', doc: 'The rules source file (it may include others); compiled once at start: a rule that does not compile stops transit.' },
          command: { kind: 'path', default: '/usr/bin/yara', doc: 'The yara program.' },
          compiler: { kind: 'path', default: '/usr/bin/yarac', doc: 'The yarac program.' },
          timeoutMs: { kind: 'int', default: 60_000, min: 1_000, max: 3_600_000, doc: 'Per-scan timeout; a scan that runs longer rejects the file.' },
          maxConcurrent: { kind: 'int', default: 2, min: 1, max: 64, doc: 'yara processes running at once.' },
          maxBytes: { kind: 'int', default: 1 * GiB, min: 0, max: Number.MAX_SAFE_INTEGER, doc: 'Largest file scanned; larger files are rejected as a scan error.' },
        },
      },
    },
  },
  status: {
    kind: 'section',
    doc: 'What each stage publishes about itself for `sluice status` and Prometheus (docs/operations.md, "Status and metrics").',
    fields: {
      dir: { kind: 'path', default: '/var/lib/sluice/metrics', doc: 'Directory of the status and metrics files: each stage writes <stage>.json and <stage>.prom in its own subdirectory <dir>/<stage>/ (made if missing; <dir> itself must exist).' },
      group: { kind: 'group', default: 'sluice-operators', doc: "Group that may read the status files (each stage's directory gets it, mode 2750; files 0640); null leaves the stage's own group (mode 0750)." },
      intervalMs: { kind: 'int', default: 5_000, min: 500, max: 300_000, doc: 'How often each stage rewrites its status and metrics files (also soon after a delivery, a held file or an error).' },
    },
  },
  egress: {
    kind: 'section',
    doc: 'The egress daemon: durable output and signed reports.',
    fields: {
      socket: { kind: 'path', default: '/run/sluice/egress.sock', doc: 'Socket egress listens on (ignored under socket activation).' },
      socketMode: { kind: 'mode', default: 0o660, doc: 'Mode of the socket file it creates.' },
      allowUsers: { kind: 'users', default: ['sluice-transit'], doc: 'Users allowed to connect (transit).' },
      outbox: { kind: 'path', default: '/var/lib/sluice/outbox', doc: 'Accepted files and their reports.' },
      rejected: { kind: 'path', default: '/var/lib/sluice/rejected', doc: 'Reports of rejected files.' },
      state: { kind: 'path', default: '/var/lib/sluice/egress', doc: 'Egress-private delivery journal (0700).' },
      journalDays: { kind: 'int', default: 7, min: 1, max: 3650, doc: 'Days the journal remembers a delivery, to ack a late resend of it as a duplicate.' },
      journalMaxDeliveries: { kind: 'int', default: 200_000, min: 1_000, max: 10_000_000, doc: 'Most deliveries the journal remembers (about 300 bytes of memory each); beyond, the oldest is forgotten before journalDays.' },
      journalMaxUnfinished: { kind: 'int', default: 10_000, min: 100, max: 1_000_000, doc: 'Most unfinished deliveries the journal holds; beyond, a new delivery is refused with retry, and egress does not start on a journal with more.' },
      memoryMaxBytes: { kind: 'int', default: 1 * GiB, min: 64 * MiB, max: Number.MAX_SAFE_INTEGER, doc: "Egress's memory limit: its unit's MemoryMax= (1G in deploy/sluice-egress.service); the check keeps what egress may hold (deliveries in flight, the journal, the signers) within it." },
      signingKey: { kind: 'path', default: '/etc/sluice/keys/signing.key', doc: 'Private signing key (mode 0400, egress only).' },
      outputMode: { kind: 'mode', default: 0o640, doc: 'Mode of delivered files and reports.' },
      signers: { kind: 'int', default: 2, min: 1, max: 64, doc: 'Worker threads that sign reports.' },
      maxInFlight: { kind: 'int', default: 32, min: 1, max: 1024, doc: 'Transfers handled at once; beyond, a record is refused with retry (overloaded).' },
      log: { kind: 'path', default: '/var/lib/sluice/log', doc: "The station's transparency log: every report's leaf and the signed tree heads (docs/report-format.md); egress writes it, consumers read it to audit the station (docs/operations.md)." },
      logBatchMs: { kind: 'int', default: 0, min: 0, max: 1_000, doc: 'Wait, in ms, before an idle log signs a tree head for the reports that became ready (0: at once); while one is signed and synced, the next batch gathers anyway (group commit).' },
      logBatchMax: { kind: 'int', default: 256, min: 1, max: 4_096, doc: 'Most reports under one signed tree head.' },
    },
  },
  uploaders: {
    kind: 'section',
    doc: 'Named uploaders: one inbox and one results directory each (docs/architecture.md).',
    fields: {
      enabled: { kind: 'bool', default: false, doc: 'Serve one inbox per named uploader instead of the single ingress.inbox.' },
      inbox: { kind: 'path', default: '/var/lib/sluice/uploaders/{name}/inbox', doc: "Where NAME's uploads appear; {name} once, as a whole path component. The uploaders are the subdirectories (with valid names) of the directory holding {name}." },
      results: { kind: 'path', default: '/var/lib/sluice/uploaders/{name}/results', doc: "Where egress puts a copy of each report about NAME's files; {name} once, as a whole path component." },
      resultsDays: { kind: 'int', default: 30, min: 1, max: 3650, doc: 'Results older than this many days are removed by egress.' },
      maxFilesWaiting: { kind: 'int', default: 1000, min: 1, max: 1_000_000, doc: "Per uploader: files spooled and not yet delivered; beyond, an upload is refused with a signed report (quota-files)." },
      maxBytesWaiting: { kind: 'int', default: 10 * GiB, min: 0, max: Number.MAX_SAFE_INTEGER, doc: "Per uploader: bytes spooled and not yet delivered; beyond, an upload is refused with a signed report (quota-bytes)." },
    },
  },
};

/** UPLOADER_NAME - a named uploader: a system user name (docs/configuration.md). */
export const UPLOADER_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;

/** MAX_UPLOADERS - the most named uploaders ingress serves at once; more are logged (`uploaders-too-many`) and left alone. */
export const MAX_UPLOADERS = 1000;

/** The placeholder an uploaders template holds once, as a whole path component. */
export const UPLOADER_PLACEHOLDER = '{name}';

/** templateProblem - why a path template is not usable ({name} exactly once, as a whole component), or null. */
export function templateProblem(template: string): string | null {
  const parts = template.split('/');
  const count = template.split(UPLOADER_PLACEHOLDER).length - 1;
  if (count !== 1 || parts.filter((p) => p === UPLOADER_PLACEHOLDER).length !== 1) {
    return `must contain ${UPLOADER_PLACEHOLDER} exactly once, as a whole path component`;
  }
  if (parts.some((p) => p === '..' || p === '.')) return "must not contain '.' or '..' components";
  return null;
}

/** uploaderPath - a template with NAME in place of {name}; NAME must be a valid uploader name. */
export function uploaderPath(template: string, name: string): string {
  if (!UPLOADER_NAME.test(name)) throw new TypeError(`uploaderPath: not an uploader name: ${JSON.stringify(name)}`);
  return template.replace(UPLOADER_PLACEHOLDER, name);
}

/** uploadersRoot - the directory whose subdirectories are the uploaders: the template's part before {name}. */
export function uploadersRoot(template: string): string {
  const i = template.indexOf(`/${UPLOADER_PLACEHOLDER}`);
  return i <= 0 ? '/' : template.slice(0, i);
}

export interface Config {
  station: string;
  limits: { maxFileBytes: number; maxNameBytes: number; maxRecordBytes: number };
  ingress: {
    inbox: string;
    spool: string;
    transitSocket: string;
    transitUser: string | number | null;
    rescanIntervalMs: number;
    recheckIntervalMs: number;
    maxQueuedNames: number;
    spoolBytes: number;
    maxInFlight: number;
    ackTimeoutMs: number;
    retryDelayMs: number;
  };
  transit: {
    socket: string;
    socketMode: number;
    allowUsers: (string | number)[];
    egressSocket: string;
    egressUser: string | number | null;
    maxInFlight: number;
    maxForwarding: number;
    ackTimeoutMs: number;
    checkTimeoutMs: number;
    state: string;
    memoryMaxBytes: number;
    copyMemoryBytes: number;
    copyDiskBytes: number;
    copyWaitMs: number;
    allowTypes: string[];
    extensionMatch: boolean;
    archives: {
      enabled: boolean;
      allowOpaque: string[];
      maxDepth: number;
      maxMembers: number;
      maxExpandedBytes: number;
      maxRatio: number;
      maxMemberRatio: number;
      maxNameBytes: number;
      maxSpillBytes: number;
    };
    clamav: {
      enabled: boolean;
      socket: string;
      host: string;
      port: number;
      timeoutMs: number;
      maxConcurrent: number;
      maxBytes: number;
    };
    yara: {
      enabled: boolean;
      rules: string;
      command: string;
      compiler: string;
      timeoutMs: number;
      maxConcurrent: number;
      maxBytes: number;
    };
  };
  status: {
    dir: string;
    group: string | number | null;
    intervalMs: number;
  };
  egress: {
    socket: string;
    socketMode: number;
    allowUsers: (string | number)[];
    outbox: string;
    rejected: string;
    state: string;
    journalDays: number;
    journalMaxDeliveries: number;
    journalMaxUnfinished: number;
    memoryMaxBytes: number;
    signingKey: string;
    outputMode: number;
    signers: number;
    maxInFlight: number;
    log: string;
    logBatchMs: number;
    logBatchMax: number;
  };
  uploaders: {
    enabled: boolean;
    inbox: string;
    results: string;
    resultsDays: number;
    maxFilesWaiting: number;
    maxBytesWaiting: number;
  };
}

/** ConfigError - every problem found, each naming its key. */
export class ConfigError extends Error {
  readonly problems: string[];
  constructor(source: string, problems: string[]) {
    super(`${source}: ${problems.length} configuration error${problems.length === 1 ? '' : 's'}:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const show = (v: unknown): string => {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 60)}…` : s;
};

/** validateValue - check one value against its spec; push problems; return the value to use. */
function validateValue(key: string, spec: Spec, value: unknown, problems: string[]): unknown {
  switch (spec.kind) {
    case 'section': {
      if (value === undefined) value = {};
      if (!isPlainObject(value)) {
        problems.push(`${key}: expected an object, got ${show(value)}`);
        value = {};
      }
      return validateSection(key, spec.fields, value as Record<string, unknown>, problems);
    }
    case 'string':
      if (typeof value !== 'string' || (spec.nonEmpty && value.length === 0) || value.length > 256) {
        problems.push(`${key}: expected a${spec.nonEmpty ? ' non-empty' : ''} string of at most 256 characters, got ${show(value)}`);
        return spec.default;
      }
      return value;
    case 'path':
      if (typeof value !== 'string' || !value.startsWith('/') || value.includes('\0')) {
        problems.push(`${key}: expected an absolute path, got ${show(value)}`);
        return spec.default;
      }
      return value;
    case 'int':
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < spec.min || value > spec.max) {
        problems.push(`${key}: expected an integer from ${spec.min} to ${spec.max}, got ${show(value)}`);
        return spec.default;
      }
      return value;
    case 'bool':
      if (typeof value !== 'boolean') {
        problems.push(`${key}: expected true or false, got ${show(value)}`);
        return spec.default;
      }
      return value;
    case 'mode':
      // Permission bits only: no mode Sluice sets (sockets, delivered files, reports) may carry
      // setuid, setgid or sticky bits, whatever an operator writes.
      if (typeof value === 'string' && /^0?[0-7]{4}$/.test(value) && parseInt(value, 8) > 0o777) {
        problems.push(`${key}: ${show(value)} has setuid, setgid or sticky bits; only permission bits ("0000" to "0777") are allowed`);
        return spec.default;
      }
      if (typeof value !== 'string' || !/^0?[0-7]{3}$/.test(value)) {
        problems.push(`${key}: expected an octal mode string such as "0660", got ${show(value)}`);
        return spec.default;
      }
      return parseInt(value, 8);
    case 'user':
      if (value === null) return null;
      if (!isUser(value)) {
        problems.push(`${key}: expected a user name, a uid or null, got ${show(value)}`);
        return spec.default;
      }
      return value;
    case 'group':
      if (value === null) return null;
      if (!isUser(value)) {
        problems.push(`${key}: expected a group name, a gid or null, got ${show(value)}`);
        return spec.default;
      }
      return value;
    case 'users':
      if (!Array.isArray(value) || value.length === 0 || !value.every(isUser)) {
        problems.push(`${key}: expected a non-empty list of user names or uids, got ${show(value)}`);
        return spec.default;
      }
      return value;
    case 'strings':
      if (!Array.isArray(value) || !value.every((s) => typeof s === 'string' && (!spec.pattern || spec.pattern.test(s)))) {
        problems.push(`${key}: expected a list of strings${spec.pattern ? ` matching ${spec.pattern}` : ''}, got ${show(value)}`);
        return spec.default;
      }
      return value;
  }
}

const isUser = (v: unknown): v is string | number =>
  (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && v < 2 ** 32) ||
  (typeof v === 'string' && /^[a-z_][a-z0-9_-]{0,31}$/.test(v));

/** validateSection - check an object's keys: unknown ones are errors, missing ones take defaults. */
function validateSection(prefix: string, fields: Record<string, Spec>, obj: Record<string, unknown>, problems: string[]) {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(obj)) {
    if (!Object.hasOwn(fields, key)) {
      problems.push(`${prefix ? `${prefix}.` : ''}${key}: unknown key`);
    }
  }
  for (const [key, spec] of Object.entries(fields)) {
    const path = prefix ? `${prefix}.${key}` : key;
    const value = obj[key];
    if (value === undefined) {
      out[key] = spec.kind === 'section' ? validateValue(path, spec, {}, problems) : structuredClone(spec.default);
    } else {
      out[key] = validateValue(path, spec, value, problems);
    }
  }
  return out;
}

/**
 * scannerProblems - a scanner section with settings but no `enabled` is an
 * error: each scanner is explicitly enabled or not. Otherwise
 * `"clamav": { "socket": ... }` would look configured and silently not run.
 */
function scannerProblems(doc: Record<string, unknown>): string[] {
  const transit = doc.transit;
  if (!isPlainObject(transit)) return [];
  return (['clamav', 'yara'] as const)
    .filter((k) => {
      const section = transit[k];
      return isPlainObject(section) && Object.keys(section).length > 0 && !Object.hasOwn(section, 'enabled');
    })
    .map((k) => `transit.${k}.enabled: must be set to true or false when other transit.${k} keys are given`);
}

/**
 * limitsProblems - the wire limits must hold together: every IngressTransfer and Ack that
 * names of up to limits.maxNameBytes allow must fit in limits.maxRecordBytes, or some
 * honest transfer could never be sent.
 */
function limitsProblems(cfg: Config): string[] {
  const need = largestFixedRecord(cfg.limits.maxNameBytes);
  return cfg.limits.maxRecordBytes >= need
    ? []
    : [`limits.maxRecordBytes: ${cfg.limits.maxRecordBytes} cannot hold the largest record that limits.maxNameBytes ${cfg.limits.maxNameBytes} allows (${need} bytes); raise it or lower limits.maxNameBytes`];
}

/** Transit's memory besides its copies: Node, V8's heap, the copy buffers kept for reuse (docs/capacity.md). */
export const TRANSIT_BASE_BYTES = 160 * MiB;

/** Transit's memory per transfer copied or checked at once, besides its copy: three 4 MiB copy buffers and the checks' reads. */
export const TRANSIT_TRANSFER_BYTES = 16 * MiB;

/** Transit's memory per transfer for archive inspection, when on: its buffers (checks/archive/limits.ts) and its per-member table. */
export const TRANSIT_ARCHIVE_BYTES = 32 * MiB;

/** Transit's memory per yara process running at once (its rules and scanner state; the file's pages are the copy's). */
export const TRANSIT_YARA_BYTES = 64 * MiB;

/** Egress's memory besides what the keys below count: Node, V8's heap, the copy buffers kept for reuse. */
export const EGRESS_BASE_BYTES = 160 * MiB;

/** Egress's memory per delivery at once: three 4 MiB copy buffers, the report body and its signing. */
export const EGRESS_DELIVERY_BYTES = 13 * MiB;

/** Egress's memory per delivery or unfinished intent the journal remembers (measured up to about 490 bytes). */
export const EGRESS_JOURNAL_ENTRY_BYTES = 512;

/** Egress's memory per signer worker: a V8 isolate and pqclean's WebAssembly signer. */
export const EGRESS_SIGNER_BYTES = 32 * MiB;

const mib = (n: number): string => (n % MiB === 0 ? `${n / MiB} MiB` : `${n} bytes`);

/** budgetProblems - limits that cannot hold together, each naming its keys (docs/capacity.md). */
export function budgetProblems(cfg: Config): string[] {
  const problems: string[] = [];
  const t = cfg.transit;
  const holdable = Math.max(t.copyMemoryBytes, t.copyDiskBytes);
  if (cfg.limits.maxFileBytes > holdable) {
    problems.push(
      `limits.maxFileBytes (${mib(cfg.limits.maxFileBytes)}) is larger than transit can ever hold a copy of: transit.copyDiskBytes is ${mib(t.copyDiskBytes)} and transit.copyMemoryBytes ${mib(t.copyMemoryBytes)}; raise transit.copyDiskBytes or lower limits.maxFileBytes`,
    );
  }
  if (cfg.limits.maxFileBytes > cfg.ingress.spoolBytes) {
    problems.push(
      `limits.maxFileBytes (${mib(cfg.limits.maxFileBytes)}) is larger than ingress.spoolBytes (${mib(cfg.ingress.spoolBytes)}): such a file could never be spooled; raise ingress.spoolBytes (and the spool's disk) or lower limits.maxFileBytes`,
    );
  }
  const yara = t.yara.enabled ? t.yara.maxConcurrent * TRANSIT_YARA_BYTES : 0;
  const perTransfer = TRANSIT_TRANSFER_BYTES + (t.archives.enabled ? TRANSIT_ARCHIVE_BYTES : 0);
  const ram = TRANSIT_BASE_BYTES + t.copyMemoryBytes + t.maxInFlight * perTransfer + yara;
  if (ram > t.memoryMaxBytes) {
    problems.push(
      `transit.copyMemoryBytes (${mib(t.copyMemoryBytes)}) + transit.maxInFlight (${t.maxInFlight}) x ${mib(perTransfer)}` +
        (t.archives.enabled ? ` (${mib(TRANSIT_ARCHIVE_BYTES)} of it for transit.archives)` : '') +
        (yara ? ` + transit.yara.maxConcurrent (${t.yara.maxConcurrent}) x ${mib(TRANSIT_YARA_BYTES)}` : '') +
        ` + ${mib(TRANSIT_BASE_BYTES)} for the process is ${mib(ram)}, over transit.memoryMaxBytes (${mib(t.memoryMaxBytes)}, the unit's MemoryMax=); lower the first, or raise the last with MemoryMax=`,
    );
  }
  if (t.maxForwarding > cfg.egress.maxInFlight) {
    problems.push(
      `transit.maxForwarding (${t.maxForwarding}) is more than egress.maxInFlight (${cfg.egress.maxInFlight}): egress would answer the rest "retry" at once; lower the first or raise the second`,
    );
  }
  const e = cfg.egress;
  const eram =
    EGRESS_BASE_BYTES +
    e.maxInFlight * EGRESS_DELIVERY_BYTES +
    (e.journalMaxDeliveries + e.journalMaxUnfinished) * EGRESS_JOURNAL_ENTRY_BYTES +
    e.signers * EGRESS_SIGNER_BYTES;
  if (eram > e.memoryMaxBytes) {
    problems.push(
      `egress.maxInFlight (${e.maxInFlight}) x ${mib(EGRESS_DELIVERY_BYTES)} + (egress.journalMaxDeliveries + egress.journalMaxUnfinished) (${e.journalMaxDeliveries + e.journalMaxUnfinished}) x ${EGRESS_JOURNAL_ENTRY_BYTES} bytes + egress.signers (${e.signers}) x ${mib(EGRESS_SIGNER_BYTES)} + ${mib(EGRESS_BASE_BYTES)} for the process is ${mib(Math.ceil(eram / MiB) * MiB)}, over egress.memoryMaxBytes (${mib(e.memoryMaxBytes)}, the unit's MemoryMax=); lower the first, or raise the last with MemoryMax=`,
    );
  }
  return problems;
}

/** parseConfig - validate a parsed JSON document; throws ConfigError with every problem. */
export function parseConfig(doc: unknown, source = 'configuration'): Config {
  const problems: string[] = [];
  if (!isPlainObject(doc)) throw new ConfigError(source, [`top level: expected a JSON object, got ${show(doc)}`]);
  const cfg = validateSection('', SCHEMA, doc, problems) as unknown as Config;
  problems.push(...scannerProblems(doc));
  for (const key of ['inbox', 'results'] as const) {
    const why = templateProblem(cfg.uploaders[key]);
    if (why) problems.push(`uploaders.${key}: ${why}, got ${show(cfg.uploaders[key])}`);
  }
  if (problems.length === 0) problems.push(...limitsProblems(cfg), ...budgetProblems(cfg));
  if (problems.length > 0) throw new ConfigError(source, problems);
  return cfg;
}

/** parseConfigText - parse and validate the text of a configuration file. */
export function parseConfigText(text: string, source = 'configuration'): Config {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(source, [`not valid JSON: ${(err as Error).message}`]);
  }
  return parseConfig(doc, source);
}

/** loadConfig - read, parse and validate a configuration file. */
export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read: ${(err as Error).message}`]);
  }
  return parseConfigText(text, path);
}

/** defaults - the configuration with every default. */
export function defaults(): Config {
  return parseConfig({});
}

/** schemaKeys - every key path of the schema (documentation test, `sluice config keys`). */
export function schemaKeys(fields: Record<string, Spec> = SCHEMA, prefix = ''): string[] {
  return Object.entries(fields).flatMap(([k, spec]) => {
    const path = prefix ? `${prefix}.${k}` : k;
    return spec.kind === 'section' ? [path, ...schemaKeys(spec.fields, path)] : [path];
  });
}

/** resolveUid - a user name or uid to a uid, through /etc/passwd; throws naming the user. */
export function resolveUid(user: string | number, passwd = '/etc/passwd'): number {
  if (typeof user === 'number') return user;
  for (const line of fs.readFileSync(passwd, 'utf8').split('\n')) {
    const [name, , uid] = line.split(':');
    if (name === user && uid !== undefined && /^\d+$/.test(uid)) return Number(uid);
  }
  throw new Error(`unknown user ${JSON.stringify(user)} (not in ${passwd})`);
}
