/*
 * NAME
 *   dev - `sluice dev --dir DIR`: the whole pipeline as the current user
 *
 * SYNOPSIS
 *   sluice dev --dir DIR [--uploaders NAME,NAME...]
 *
 * DESCRIPTION
 *   Creates DIR/inbox, DIR/outbox, DIR/rejected, DIR/run (sockets),
 *   DIR/ingress (spool, 0700), DIR/transit (copies RAM cannot hold, 0700),
 *   DIR/egress (delivery journal, 0700), DIR/metrics (each stage's status
 *   and metrics files, in DIR/metrics/<stage>/, with a link
 *   DIR/metrics/<stage>.prom to each metrics file) and
 *   DIR/keys (a signing key made on first use), writes DIR/sluice.json
 *   unless it exists (edit it to change checks or limits), and runs
 *   ingress, transit and egress as three separate processes. Their JSON log
 *   lines go to stdout, with this supervisor's own (stage "dev").
 *
 *   A stage that dies is logged (`stage-exited`) and restarted after a
 *   short backoff, as systemd's Restart=always would. SIGTERM or SIGINT
 *   stops all three (SIGTERM, then SIGKILL after 10 s) and exits 0 when
 *   every stage exited 0, else 1.
 *
 *   Transit listens on DIR/run/transit.sock, egress on DIR/run/egress.sock
 *   (pinned in ../shared/design.md).
 *
 *   --uploaders alice,bob: named uploaders. Makes DIR/inbox/NAME/ and
 *   DIR/results/NAME/ for each, and the configuration it writes enables
 *   uploaders with the templates DIR/inbox/{name} and DIR/results/{name}:
 *   a file dropped into DIR/inbox/alice/ has "uploader":"alice" in its
 *   report, and a copy of the report appears in DIR/results/alice/. An
 *   existing sluice.json must enable uploaders itself (the directories are
 *   made from its templates). Without --uploaders, nothing of this.
 *
 * SECURITY
 *   DIR is often under /tmp, where other users create names too. sluice
 *   dev refuses (exit 1, a `dev-refused` line and a message naming the
 *   path and why) to use DIR, any directory in it, or any directory its
 *   sluice.json names, unless the current user owns it, no one else can
 *   write to it, and every directory above it is root's or the user's and
 *   not writable by others unless sticky; it never follows a symbolic link
 *   where one of its directories or files belongs (safe-dir.ts). A
 *   directory an earlier run made passes those rules, so re-runs work.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, parseConfig, uploaderPath, uploadersRoot, UPLOADER_NAME, type Config } from '@sluice/core';
import { writeKeyFiles } from '@sluice/report';
import { UnsafePathError, ownDir, ownFileOrAbsent, readOwnFile } from './safe-dir.js';

export const STAGES = ['egress', 'transit', 'ingress'] as const;
export type StageName = (typeof STAGES)[number];

/** stageScript - the compiled entry point of a stage, beside this package. */
export function stageScript(stage: StageName): string {
  return fileURLToPath(new URL(`../../${stage}/dist/main.js`, import.meta.url));
}

export const KEY_NAME = 'signing';

/** devLayout - every path `sluice dev` uses under DIR. */
export function devLayout(dir: string) {
  const d = path.resolve(dir);
  return {
    dir: d,
    inbox: path.join(d, 'inbox'),
    outbox: path.join(d, 'outbox'),
    rejected: path.join(d, 'rejected'),
    run: path.join(d, 'run'),
    spool: path.join(d, 'ingress'),
    transitState: path.join(d, 'transit'),
    state: path.join(d, 'egress'),
    keys: path.join(d, 'keys'),
    metrics: path.join(d, 'metrics'),
    /** The station's transparency log (pinned in ../shared/design.md). */
    log: path.join(d, 'log'),
    secretKey: path.join(d, 'keys', `${KEY_NAME}.key`),
    publicKey: path.join(d, 'keys', `${KEY_NAME}.pub`),
    config: path.join(d, 'sluice.json'),
    results: path.join(d, 'results'),
    /** The uploaders templates under DIR (pinned in ../shared/design.md). */
    uploaderInbox: path.join(d, 'inbox', '{name}'),
    uploaderResults: path.join(d, 'results', '{name}'),
    transitSocket: path.join(d, 'run', 'transit.sock'),
    egressSocket: path.join(d, 'run', 'egress.sock'),
  };
}

/** devConfig - the configuration document `sluice dev` writes: everything under DIR, every stage as the current user. */
export function devConfig(
  dir: string,
  overrides: {
    limits?: Partial<Config['limits']>;
    ingress?: Partial<Config['ingress']>;
    transit?: Partial<Config['transit']>;
    egress?: Partial<Config['egress']>;
    station?: string;
    /** Named uploaders: enabled, with the DIR templates (and these keys over them). */
    uploaders?: Partial<Config['uploaders']>;
  } = {},
) {
  const l = devLayout(dir);
  const uid = process.getuid!();
  return {
    ...(overrides.uploaders ? { uploaders: { enabled: true, inbox: l.uploaderInbox, results: l.uploaderResults, ...overrides.uploaders } } : {}),
    station: overrides.station ?? 'sluice-dev',
    limits: { ...overrides.limits },
    status: { dir: l.metrics, group: null, intervalMs: 1_000 },
    ingress: {
      inbox: l.inbox,
      spool: l.spool,
      transitSocket: l.transitSocket,
      transitUser: uid,
      rescanIntervalMs: 5_000,
      recheckIntervalMs: 250,
      retryDelayMs: 1_000,
      ...overrides.ingress,
    },
    transit: {
      socket: l.transitSocket,
      socketMode: '0600',
      allowUsers: [uid],
      egressSocket: l.egressSocket,
      egressUser: uid,
      state: l.transitState,
      // Archives are looked inside, and delivered when every member passes (docs/checks.md, "Archives").
      allowTypes: [...parseConfig({}).transit.allowTypes, 'zip', 'tar', 'gz', 'tar.gz'],
      archives: { enabled: true },
      ...overrides.transit,
    },
    egress: {
      socket: l.egressSocket,
      socketMode: '0600',
      allowUsers: [uid],
      outbox: l.outbox,
      rejected: l.rejected,
      state: l.state,
      signingKey: l.secretKey,
      log: l.log,
      ...overrides.egress,
    },
  };
}

/** The directories `sluice dev` makes under DIR, and the mode each is made with. */
const DEV_DIRS = (l: ReturnType<typeof devLayout>): [string, number][] => [
  [l.inbox, 0o755],
  [l.outbox, 0o755],
  [l.rejected, 0o755],
  [l.run, 0o700],
  [l.spool, 0o700],
  [l.transitState, 0o700],
  [l.state, 0o700],
  [l.keys, 0o700],
  [l.metrics, 0o750],
  [l.log, 0o750],
];

/** privateDir - ownDir, and the mode made exactly `mode` when it is private (0700). */
function privateDir(p: string, mode: number): void {
  const real = ownDir(p, mode);
  if (mode === 0o700 && (fs.lstatSync(real).mode & 0o777) !== mode) fs.chmodSync(real, mode);
}

/** configuredDirs - every directory a configuration makes the stages write in, with the mode to make it with. */
function configuredDirs(cfg: Config): [string, number][] {
  return [
    [cfg.ingress.inbox, 0o755],
    [cfg.ingress.spool, 0o700],
    [cfg.transit.state, 0o700],
    [cfg.egress.outbox, 0o755],
    [cfg.egress.rejected, 0o755],
    [cfg.egress.state, 0o700],
    [cfg.egress.log, 0o750],
    [path.dirname(cfg.egress.signingKey), 0o700],
    ...(cfg.uploaders.enabled ? [cfg.uploaders.inbox, cfg.uploaders.results].map((t): [string, number] => [uploadersRoot(t), 0o755]) : []),
    [cfg.status.dir, 0o750],
    ...[cfg.transit.socket, cfg.egress.socket, cfg.ingress.transitSocket, cfg.transit.egressSocket].map((s): [string, number] => [path.dirname(s), 0o700]),
  ];
}

/**
 * linkMetrics - DIR/metrics/<stage>.prom, a link to the file each stage rewrites in its own
 * directory, so that the *.prom files node_exporter's textfile collector reads are all in one.
 * A name already there that is not that link is left alone.
 */
function linkMetrics(dir: string): void {
  for (const stage of STAGES) {
    const target = `${stage}/${stage}.prom`;
    const link = path.join(dir, `${stage}.prom`);
    try {
      fs.symlinkSync(target, link);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
  }
}

/**
 * prepareDev - create the directories, the key and the configuration (each
 * only if missing). Throws UnsafePathError for a directory (DIR, one in it,
 * or one the configuration names) that someone other than the current user
 * or root could have made or could write through, and for a symbolic link
 * where a directory or file of sluice dev's belongs (safe-dir.ts).
 */
export function prepareDev(dir: string, uploaders: readonly string[] = []): ReturnType<typeof devLayout> & { newKey: boolean } {
  const bad = uploaders.find((n) => !UPLOADER_NAME.test(n));
  if (bad !== undefined) throw new Error(`--uploaders: ${JSON.stringify(bad)} is not an uploader name (a system user name: ${UPLOADER_NAME.source})`);
  const l = devLayout(ownDir(dir, 0o755));
  for (const [d, mode] of DEV_DIRS(l)) privateDir(d, mode);
  let newKey = false;
  const havePublic = ownFileOrAbsent(l.publicKey);
  if (!ownFileOrAbsent(l.secretKey)) {
    if (havePublic) throw new UnsafePathError(l.publicKey, `is there without its private key ${l.secretKey}; move it away to make a new key`);
    writeKeyFiles(l.keys, { name: KEY_NAME }); // O_CREAT|O_EXCL|O_NOFOLLOW
    newKey = true;
  }
  if (!ownFileOrAbsent(l.config)) {
    const doc = devConfig(l.dir, uploaders.length > 0 ? { uploaders: {} } : {});
    fs.writeFileSync(l.config, `${JSON.stringify(doc, null, 2)}\n`, { mode: 0o644, flag: 'wx' }); // O_EXCL: never through a link
  }
  const cfg = parseConfig(JSON.parse(readOwnFile(l.config)), l.config); // fail before starting anything
  if (uploaders.length > 0 && !cfg.uploaders.enabled) throw new Error(`${l.config}: --uploaders needs uploaders.enabled in it`);
  for (const [d, mode] of configuredDirs(cfg)) privateDir(d, mode);
  // Each uploader's inbox and results, under the directories the templates name (checked like the rest).
  for (const name of uploaders) for (const t of [cfg.uploaders.inbox, cfg.uploaders.results]) privateDir(uploaderPath(t, name), 0o755);
  linkMetrics(cfg.status.dir);
  return { ...l, newKey };
}

/** runDev - supervise the three stages until SIGTERM/SIGINT. */
export async function runDev(dir: string, uploaders: readonly string[] = []): Promise<number> {
  const log = createLogger('dev');
  let l: ReturnType<typeof prepareDev>;
  try {
    l = prepareDev(dir, uploaders);
  } catch (err) {
    if (err instanceof UnsafePathError) log.error({ event: 'dev-refused', path: err.path, reason: err.why }, `sluice dev refuses ${err.path}`);
    throw err;
  }
  log.info(
    { event: 'dev-starting', dir: l.dir, inbox: l.inbox, outbox: l.outbox, rejected: l.rejected, config: l.config, publicKey: l.publicKey, newKey: l.newKey, ...(uploaders.length > 0 ? { uploaders: [...uploaders] } : {}) },
    `sluice dev in ${l.dir}; reports verify with --pub ${l.publicKey}`,
  );
  const children = new Map<StageName, ChildProcess>();
  const backoff = new Map<StageName, number>();
  let stopping = false;

  const start = (stage: StageName) => {
    const startedAt = Date.now();
    const child = spawn(process.execPath, [stageScript(stage), '--config', l.config], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, NOTIFY_SOCKET: '', LISTEN_FDS: '', LISTEN_PID: '' },
    });
    children.set(stage, child);
    child.on('exit', (code, signal) => {
      if (children.get(stage) === child) children.delete(stage);
      if (stopping) return;
      // Like systemd's Restart=always with a growing RestartSec, reset after a good run.
      const prev = Date.now() - startedAt > 10_000 ? 0 : (backoff.get(stage) ?? 0);
      const delay = Math.min(prev === 0 ? 100 : prev * 2, 5_000);
      backoff.set(stage, delay);
      log.warn({ event: 'stage-exited', which: stage, code, signal, restartInMs: delay }, `${stage} exited; restarting`);
      setTimeout(() => {
        if (!stopping) start(stage);
      }, delay);
    });
    log.info({ event: 'stage-started', which: stage, childPid: child.pid }, `${stage} started`);
  };

  for (const s of STAGES) start(s);

  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ event: 'dev-stopping', reason: signal }, 'stopping the pipeline');
      const alive = [...children.values()];
      if (alive.length === 0) return resolve(0);
      let left = alive.length;
      let unclean = 0;
      const kill = setTimeout(() => alive.forEach((c) => c.kill('SIGKILL')), 10_000);
      for (const c of alive) {
        c.once('exit', (code) => {
          // Clean means the stage ran its stop handlers and exited 0; anything else makes `sluice dev` exit 1.
          if (code !== 0) unclean++;
          if (--left === 0) {
            clearTimeout(kill);
            log.info({ event: 'dev-stopped', reason: unclean === 0 ? 'clean' : `${unclean} stage(s) did not exit 0` }, 'pipeline stopped');
            resolve(unclean === 0 ? 0 : 1);
          }
        });
        c.kill('SIGTERM');
      }
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}
