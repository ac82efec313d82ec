/*
 * NAME
 *   build-checks - the checks transit runs, from the configuration
 *
 * DESCRIPTION
 *   Always: the size limit and the content-type allowlist. Optionally (on by
 *   default): the extension/content agreement. Every check gets
 *   transit.checkTimeoutMs. An empty list is impossible: runChecks rejects
 *   a file when no check ran, and this function never returns fewer than two.
 */
import type { Config } from '@sluice/core';
import { sizeLimitCheck, fileTypeCheck, extensionMatchCheck, type Check } from './checks/index.js';

/** buildChecks - the configured checks, in the order they appear in reports. */
export function buildChecks(cfg: Config): Check[] {
  const timeoutMs = cfg.transit.checkTimeoutMs;
  const checks: Check[] = [
    sizeLimitCheck({ maxBytes: cfg.limits.maxFileBytes, timeoutMs }),
    fileTypeCheck({ allow: cfg.transit.allowTypes, timeoutMs }),
  ];
  if (cfg.transit.extensionMatch) checks.push(extensionMatchCheck({ timeoutMs }));
  return checks;
}
