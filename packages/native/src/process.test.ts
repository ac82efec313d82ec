// setDumpable and getDumpable: prctl(PR_SET_DUMPABLE) / prctl(PR_GET_DUMPABLE),
// in child processes (the attribute is the whole process's). What it is for:
// a process of the same uid, without CAP_SYS_PTRACE, cannot read a
// non-dumpable process's memory or environment through /proc, and proc(5)
// gives that process's /proc/PID files to root. As root the children run
// as uid 65534 and are probed by another process of that uid; otherwise they
// run as ourselves and this process probes them.
import fs from 'node:fs';
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import * as native from '@sluice/native';
import { CAN_SWITCH_UID, NOBODY, nodeHelper } from '../test-helpers/harness.mjs';

const uid = CAN_SWITCH_UID ? NOBODY : process.getuid!();
const isRoot = process.getuid!() === 0;

/** readableBySameUid - can a process of the child's uid (not root) read /proc/PID/environ? */
function readableBySameUid(pid: number): boolean {
  if (CAN_SWITCH_UID) {
    const r = spawnSync('setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', 'cat', `/proc/${pid}/environ`], { stdio: 'ignore' });
    return r.status === 0;
  }
  try {
    fs.readFileSync(`/proc/${pid}/environ`);
    return true;
  } catch {
    return false;
  }
}

/** run - a child that sets dumpable to `value`; what it reported and what its uid can see of it. */
async function run(value: 0 | 1) {
  const c = nodeHelper('dumpable.mjs', [String(value)], { asUser: true, stdin: 'pipe' });
  try {
    const said = JSON.parse(await c.line()) as { pid: number; before: number; after: number };
    return { ...said, owner: fs.statSync(`/proc/${said.pid}/status`).uid, readable: readableBySameUid(said.pid) };
  } finally {
    c.proc.stdin!.end();
    await c.done;
  }
}

const canProbe = CAN_SWITCH_UID || !isRoot;

describe('setDumpable / getDumpable', () => {
  it.skipIf(!canProbe)(`at 0, a process of the same uid cannot read the process's environment, and its /proc files are root's; at 1 it can${canProbe ? '' : ' [skipped: as root without setpriv, nothing can be denied]'}`, async () => {
    const closed = await run(0);
    expect([closed.before, closed.after]).toEqual([1, 0]);
    expect(closed.owner).toBe(0);
    expect(closed.readable).toBe(false);
    // The control: the same helper left dumpable is readable by its uid, and its files are its own.
    const open = await run(1);
    expect([open.before, open.after]).toEqual([1, 1]);
    expect(open.owner).toBe(uid);
    expect(open.readable).toBe(true);
  });

  it('refuses any value but 0 and 1 before prctl runs; getDumpable reads this process without changing it', () => {
    for (const v of [2, -1, 0.5, 3]) expect(() => native.setDumpable(v)).toThrow(RangeError);
    expect(native.getDumpable()).toBe(native.getDumpable());
    expect([0, 1, 2]).toContain(native.getDumpable());
  });
});
