/*
 * NAME
 *   daemon - the skeleton every stage runs in
 *
 * SYNOPSIS
 *   runDaemon('transit', async ({ cfg, log, onStop, listen }) => { ... });
 *
 * DESCRIPTION
 *   Like Postfix's trigger_server_main: parses `--config FILE`, loads the
 *   configuration, makes the logger, installs the signal handlers, runs the
 *   stage's main, tells systemd READY=1 and keeps the watchdog fed, and
 *   owns the one fatal path. A stage's main file is a few dozen lines.
 *
 *   SIGTERM and SIGINT stop the daemon: the stop handlers run (stop
 *   accepting, let in-flight work settle briefly, close), then it exits 0.
 *   Anything that escapes (an uncaught exception, an unhandled rejection, a
 *   main that throws) is fatal: one `fatal` log line, exit 1, and systemd
 *   (or `sluice dev`) restarts the stage. Bad input never takes this path;
 *   stages turn it into Refused and a log event.
 *
 *   Socket activation: when LISTEN_PID is our pid and LISTEN_FDS is 1,
 *   listenFd() returns descriptor 3 for Listener.adopt; listen() adopts it,
 *   or creates the configured socket, and accepts only the allowed users.
 */
import { createRequire } from 'node:module';
import { createLogger, type Logger, type Stage } from './log.js';
import { loadConfig, resolveUid, type Config } from './config.js';
import { describe } from './errors.js';
import { Listener, type Connection } from './channel.js';
import { station, startStatus, type StatusPublisher } from './status.js';

export interface DaemonContext {
  cfg: Config;
  log: Logger;
  /** Register a stop handler; they run in reverse order of registration. */
  onStop(fn: () => void | Promise<void>): void;
  /** The descriptor systemd handed over, or null when the stage must create its own socket. */
  listenFd(): number | null;
  /** Serve the stage's socket (systemd's, or its own at `socket`) to the allowed upstream users only; `where` names it for logs. */
  listen(section: ListenSection, onConnection: (conn: Connection) => void): { listener: Listener; where: string };
}

/** ListenSection - the configuration of a listening stage's socket. */
export interface ListenSection {
  socket: string;
  socketMode: number;
  allowUsers: readonly (string | number)[];
}

/** parseArgs - the daemons take exactly `--config FILE`. */
function parseArgs(argv: string[]): { config: string } {
  if (argv.length === 2 && argv[0] === '--config' && argv[1]) return { config: argv[1] };
  throw new Error(`usage: ${process.argv[1] ?? 'sluice-daemon'} --config FILE (got ${JSON.stringify(argv)})`);
}

/** listenFdFromEnv - the sd_listen_fds(3) protocol, for one socket. */
export function listenFdFromEnv(env: NodeJS.ProcessEnv = process.env, pid = process.pid): number | null {
  if (env.LISTEN_PID === undefined || Number(env.LISTEN_PID) !== pid) return null;
  if (env.LISTEN_FDS !== '1') {
    throw new Error(`expected exactly one socket from systemd, LISTEN_FDS=${JSON.stringify(env.LISTEN_FDS)}`);
  }
  return 3;
}

/** Notifier - sd_notify(3) over $NOTIFY_SOCKET, a no-op without it. */
export class Notifier {
  private readonly sock: { sendTo(b: Buffer, o: number, l: number, p: string, cb?: (e?: Error) => void): void; close(): void } | null;
  private readonly path: string;

  constructor(path: string | undefined = process.env.NOTIFY_SOCKET) {
    this.path = path ?? '';
    if (!path) {
      this.sock = null;
      return;
    }
    if (path.startsWith('@')) throw new Error('abstract NOTIFY_SOCKET addresses are not supported');
    const require = createRequire(import.meta.url);
    const { DgramSocket } = require('node-unix-socket') as { DgramSocket: new () => NonNullable<Notifier['sock']> };
    this.sock = new DgramSocket();
  }

  notify(state: string): void {
    if (!this.sock) return;
    const buf = Buffer.from(state);
    this.sock.sendTo(buf, 0, buf.length, this.path, () => {});
  }

  close(): void {
    this.sock?.close();
  }
}

/** runDaemon - run a stage: config, logger, signals, readiness, watchdog, one fatal path. */
export function runDaemon(stage: Stage, main: (ctx: DaemonContext) => Promise<void>): void {
  const log = createLogger(stage);
  if (stage === 'ingress' || stage === 'transit' || stage === 'egress') station.init(stage, SOFTWARE_VERSION);
  let status: StatusPublisher | null = null;
  const fatal = (event: string, err: unknown): never => {
    log.fatal({ event, reason: describe(err) }, `${stage} stopping: ${describe(err)}`);
    process.exit(1);
  };
  process.on('uncaughtException', (err) => fatal('uncaught-exception', err));
  process.on('unhandledRejection', (err) => fatal('unhandled-rejection', err));

  const stops: (() => void | Promise<void>)[] = [];
  let notifier: Notifier;
  let cfg: Config;
  try {
    const args = parseArgs(process.argv.slice(2));
    cfg = loadConfig(args.config);
    notifier = new Notifier();
  } catch (err) {
    fatal('startup-failed', err);
    return;
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ event: 'stopping', reason: signal }, `${stage} stopping`);
    notifier.notify('STOPPING=1');
    for (const fn of stops.reverse()) {
      try {
        await fn();
      } catch (err) {
        log.warn({ event: 'stop-handler-failed', reason: describe(err) }, 'stop handler failed');
      }
    }
    log.info({ event: 'stopped' }, `${stage} stopped`);
    status?.stop('stopped');
    notifier.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  const ctx: DaemonContext = {
    cfg,
    log,
    onStop: (fn) => stops.push(fn),
    listenFd: () => listenFdFromEnv(),
    listen: (section, onConnection) => {
      const opts = { log, maxRecordBytes: cfg.limits.maxRecordBytes, allowUids: section.allowUsers.map((u) => resolveUid(u)), onConnection };
      const inherited = listenFdFromEnv();
      const listener = inherited === null ? Listener.open(section.socket, section.socketMode, opts) : Listener.adopt(inherited, opts);
      return { listener, where: inherited === null ? section.socket : `fd ${inherited}` };
    },
  };
  main(ctx).then(
    () => {
      log.info({ event: 'started', version: SOFTWARE_VERSION }, `${stage} ready`);
      notifier.notify('READY=1');
      if (station.stage) status = startStatus(cfg.status, log);
      const usec = Number(process.env.WATCHDOG_USEC);
      if (Number.isFinite(usec) && usec > 0 && (!process.env.WATCHDOG_PID || Number(process.env.WATCHDOG_PID) === process.pid)) {
        setInterval(() => notifier.notify('WATCHDOG=1'), Math.max(100, usec / 2000)).unref();
      }
    },
    (err) => fatal('startup-failed', err),
  );
}

/** The software version written into reports and logs. */
export const SOFTWARE_VERSION = '0.1.0';
