/*
 * NAME
 *   verdict - the one rule that turns check results into accepted or rejected
 *
 * SYNOPSIS
 *   import { decide, reportReason, type Decision, type Finding } from '@sluice/core';
 *
 *   decide(results: readonly Finding[], upstream?: 'accepted' | 'rejected'): Decision
 *   reportReason(results: readonly Finding[], verdict: 'accepted' | 'rejected'): string
 *
 * DESCRIPTION
 *   Transit decides on the results of its checks; egress decides again on
 *   the results transit sent, with transit's verdict as `upstream`, and
 *   delivers nothing transit did not accept. Both call decide(), so the two
 *   can never disagree on what a result means (design invariant 5, fail
 *   closed):
 *
 *     accepted  at least one result, every outcome exactly 'pass', and the
 *               upstream verdict (when given) 'accepted';
 *     rejected  otherwise. `reason` lists every result that is not a pass.
 *     retry     rejected, and every result that is not a pass is an error
 *               marked retry (an engine that could not be reached): the file
 *               is not known to be bad, only not yet known to be good.
 *
 *   reportReason() is the text a signed report states under `reason`, and
 *   transit's `checked` log line: "name: reason" for each result that is not
 *   a pass, joined by "; " ('' when accepted); a rejection with nothing
 *   failing says why ("no checks ran", "transit rejected the file").
 *   Changing it changes what reports say (docs/report-format.md).
 */

/** Finding - one check's result, as far as the verdict is concerned. */
export interface Finding {
  readonly name: string;
  /** 'pass' | 'fail' | 'error'; anything else is not a pass. */
  readonly outcome: string;
  readonly reason: string;
  /** true only when the check's engine could not be reached. */
  readonly retry?: boolean;
}

/** The verdict over all results. */
export interface Decision {
  verdict: 'accepted' | 'rejected';
  reason: string;
  /** True when the only obstacles are unreachable engines: hold and retry rather than finalise. */
  retry: boolean;
}

/** decide - the verdict over a list of results (pure; rules in the header). */
export function decide(results: readonly Finding[], upstream?: 'accepted' | 'rejected'): Decision {
  if (upstream !== undefined && upstream !== 'accepted') return { verdict: 'rejected', reason: 'transit rejected the file', retry: false };
  if (results.length === 0) return { verdict: 'rejected', reason: 'no checks configured', retry: false };
  const blocking = results.filter((r) => r.outcome !== 'pass');
  if (blocking.length === 0) {
    const n = results.length;
    return { verdict: 'accepted', reason: n === 1 ? 'the 1 check passed' : `all ${n} checks passed`, retry: false };
  }
  const retry = blocking.every((r) => r.outcome === 'error' && r.retry === true);
  const listed = blocking.map((r) => {
    const outcome = r.outcome === 'fail' ? 'failed' : r.outcome === 'error' ? 'error' : `unknown outcome`;
    return `${r.name} ${outcome}: ${r.reason}`;
  });
  return { verdict: 'rejected', reason: (retry ? 'held for retry: ' : '') + listed.join('; '), retry };
}

/** reportReason - the `reason` a report states for this verdict over these results. */
export function reportReason(results: readonly Finding[], verdict: 'accepted' | 'rejected'): string {
  const failing = results.filter((r) => r.outcome !== 'pass').map((r) => `${r.name}: ${r.reason}`).join('; ');
  if (verdict === 'rejected' && failing === '') return results.length === 0 ? 'no checks ran' : 'transit rejected the file';
  return failing;
}
