/*
 * NAME
 *   size - the size limit check
 *
 * SYNOPSIS
 *   import { sizeLimitCheck } from './size.js';
 *
 *   sizeLimitCheck({ maxBytes, timeoutMs? }): Check
 *
 * DESCRIPTION
 *   Fails when the size of transit's copy is larger than maxBytes; a file of
 *   exactly maxBytes passes. The size is the one transit measured on its own
 *   sealed copy (CheckInput.size), never the size claimed in the record.
 *   Ingress and transit enforce their own size policy before copying (design
 *   invariant 2); this check puts the limit into the signed report.
 *
 * DIAGNOSTICS
 *   The factory throws TypeError for a maxBytes that is not a non-negative
 *   safe integer: a configuration error stops the daemon at start.
 */

import type { Check, CheckInput, CheckRun } from './check.js';

export interface SizeLimitConfig {
  /** Largest accepted size in bytes (inclusive). */
  maxBytes: number;
  /** Default 1000 ms. */
  timeoutMs?: number;
}

export const SIZE_ENGINE = 'sluice size-limit';

/** sizeLimitCheck - a check that fails when input.size > maxBytes. */
export function sizeLimitCheck(config: SizeLimitConfig): Check {
  const { maxBytes, timeoutMs = 1000 } = config;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 0) {
    throw new TypeError(`sizeLimitCheck: maxBytes must be a non-negative safe integer, got ${String(maxBytes)}`);
  }
  return {
    name: 'size-limit',
    timeoutMs,
    engine: SIZE_ENGINE,
    async run(input: CheckInput): Promise<CheckRun> {
      if (input.size > maxBytes) {
        return { outcome: 'fail', reason: `size ${input.size} bytes exceeds the limit of ${maxBytes} bytes`, engine: SIZE_ENGINE };
      }
      return { outcome: 'pass', reason: `size ${input.size} bytes is within the limit of ${maxBytes} bytes`, engine: SIZE_ENGINE };
    },
  };
}
