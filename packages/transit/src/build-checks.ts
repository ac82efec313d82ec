/*
 * NAME
 *   build-checks - the checks transit runs, from the configuration
 *
 * SYNOPSIS
 *   const { checks, stop } = await buildChecks(cfg, log);   // throws: transit must not start
 *
 * DESCRIPTION
 *   Always: the size limit and the content-type allowlist. Optionally (on by
 *   default): the extension/content agreement, and the archive inspection
 *   (transit.archives: members of zip, tar, tar.gz and gz held to the same
 *   rules; nested zips written out in transit.state). These get
 *   transit.checkTimeoutMs. Then the scanners, each only when its section
 *   says enabled: true (docs/scanners.md):
 *
 *     clamav  clamd over its local socket (FILDES) or TCP (INSTREAM). It
 *             does not delay start: a background wait, with backoff, logs
 *             scanner-waiting until clamd answers, then scanner-ready.
 *             Meanwhile every file is held (RETRY), never passed.
 *     yara    rules compiled here, before transit listens; a rule that does
 *             not compile, or a yara that cannot scan a memfd, throws, and
 *             runDaemon logs startup-failed and exits 1.
 *
 *   The order of the list is the order of the checks in every report, so a
 *   report shows which scanners ran. An empty list is impossible: runChecks
 *   rejects a file when no check ran, and this function never returns fewer
 *   than two.
 *
 *   stop() ends the background wait and releases the compiled rules.
 */
import { station, type Config } from '@sluice/core';
import {
  sizeLimitCheck,
  fileTypeCheck,
  extensionMatchCheck,
  archiveCheck,
  clamavCheck,
  yaraCheck,
  type Check,
  type ScannerLog,
} from './checks/index.js';

export interface BuiltChecks {
  /** In report order. */
  checks: Check[];
  /** Stop background work and release resources (at shutdown). */
  stop(): void;
}

/** buildChecks - the configured checks, in the order they appear in reports. */
export async function buildChecks(cfg: Config, log: ScannerLog): Promise<BuiltChecks> {
  const t = cfg.transit;
  const timeoutMs = t.checkTimeoutMs;
  const checks: Check[] = [
    sizeLimitCheck({ maxBytes: cfg.limits.maxFileBytes, timeoutMs }),
    fileTypeCheck({ allow: t.allowTypes, timeoutMs }),
  ];
  if (t.extensionMatch) checks.push(extensionMatchCheck({ timeoutMs }));
  if (t.archives.enabled) {
    const { enabled: _on, ...limits } = t.archives;
    checks.push(archiveCheck({ limits, allow: t.allowTypes, extensionMatch: t.extensionMatch, spillDir: t.state, timeoutMs }));
  }

  const background = new AbortController();
  const closers: (() => void)[] = [() => background.abort()];
  const stop = () => {
    for (const close of closers.splice(0).reverse()) close();
  };
  try {
    if (t.clamav.enabled) {
      const c = t.clamav;
      const clamav = clamavCheck({
        socket: c.socket,
        host: c.host,
        port: c.port,
        timeoutMs: c.timeoutMs,
        maxConcurrent: c.maxConcurrent,
        maxBytes: c.maxBytes,
      });
      checks.push(clamav);
      void clamav.waitUntilUp(scannerWatch(log), background.signal);
    }
    if (t.yara.enabled) {
      const y = t.yara;
      const yara = await yaraCheck({
        rules: y.rules,
        command: y.command,
        compiler: y.compiler,
        timeoutMs: y.timeoutMs,
        maxConcurrent: y.maxConcurrent,
        maxBytes: y.maxBytes,
      });
      closers.push(() => yara.close());
      checks.push(yara);
      for (const warning of yara.warnings) log.warn({ event: 'scanner-warning', scanner: 'yara', reason: warning }, 'yarac warned while compiling the rules');
      log.info({ event: 'scanner-ready', scanner: 'yara', where: y.rules, engine: yara.engine }, `YARA rules compiled: ${yara.engine}`);
      station.scanner('yara', { up: true, engine: yara.engine });
    }
  } catch (err) {
    stop();
    throw err;
  }
  return { checks, stop };
}

/** scannerWatch - the log clamd's wait goes to, telling the station when clamd answers (or not yet). */
function scannerWatch(log: ScannerLog): ScannerLog {
  return new Proxy(log, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if ((prop === 'info' || prop === 'warn') && typeof v === 'function') {
        return (obj: { event?: string; engine?: string }, ...rest: unknown[]) => {
          if (obj?.event === 'scanner-ready') station.scanner('clamav', { up: true, engine: obj.engine });
          if (obj?.event === 'scanner-waiting') station.scanner('clamav', { up: false });
          return (v as (...a: unknown[]) => unknown).call(target, obj, ...rest);
        };
      }
      return v;
    },
  });
}
