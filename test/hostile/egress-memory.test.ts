// Egress holds the signing key's seeds in memory. Another process of egress's
// uid (in `sluice dev`, where every stage runs as one user, that is any
// stage) must not be able to read that memory, and a crash must not write it
// to a core file: egress makes itself non-dumpable (prctl(PR_SET_DUMPABLE, 0))
// before it reads the key. The observable, from proc(5): a non-dumpable
// process's /proc/PID files belong to root, and a process of the same uid
// without CAP_SYS_PTRACE cannot open its environ or mem. Ingress and transit,
// which hold no secret, are the control: the same probe reads them.
//
// As root (CI) the pipeline runs as uid 65534 and the probe is another
// process of that uid; otherwise it runs as ourselves and we probe it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { Pipeline } from '../support/pipeline.js';

const NOBODY = 65534;
const isRoot = process.getuid?.() === 0;
const canSwitch = isRoot && fs.existsSync('/usr/bin/setpriv');
const why = isRoot && !canSwitch ? ' [skipped: as root without setpriv, nothing can be denied]' : '';
const uid = canSwitch ? NOBODY : process.getuid!();

/** asUid - run a command as the pipeline's uid, without capabilities; its exit status. */
function asUid(cmd: string, args: string[]): number | null {
  const argv = canSwitch ? ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', cmd, ...args] : [cmd, ...args];
  return spawnSync(argv[0]!, argv.slice(1), { stdio: 'ignore' }).status;
}

let p: Pipeline | undefined;
const pids: Record<string, number> = {};

beforeAll(async () => {
  if (why) return;
  p = await Pipeline.start(undefined, canSwitch ? { uid: NOBODY } : {});
  for (const l of p.lines) if (l.stage === 'dev' && l.event === 'stage-started') pids[String(l.which)] = Number(l.childPid);
});
afterAll(async () => {
  await p?.stop();
});

describe(`egress's memory, against a process of its own uid${why}`, () => {
  it.skipIf(!!why)(`egress is not dumpable: its /proc files are root's, and its environ and mem cannot be opened by its uid; ingress and transit can${why}`, async () => {
    expect(Object.keys(pids).sort()).toEqual(['egress', 'ingress', 'transit']);
    for (const [stage, pid] of Object.entries(pids)) {
      const owner = fs.statSync(`/proc/${pid}/status`).uid;
      const environ = asUid('cat', [`/proc/${pid}/environ`]);
      const mem = asUid('dd', [`if=/proc/${pid}/mem`, 'bs=1', 'count=0', 'status=none']);
      if (stage === 'egress') expect({ stage, owner, environ, mem }).toEqual({ stage, owner: 0, environ: 1, mem: 1 });
      else expect({ stage, owner, environ, mem }, 'the control: a dumpable stage of the same uid').toEqual({ stage, owner: uid, environ: 0, mem: 0 });
    }
    // And it still works: an upload is delivered with a signed report.
    const part = `${p!.inbox}/.after-the-probe.txt.part`;
    fs.writeFileSync(part, 'delivered by a non-dumpable egress\n');
    fs.chownSync(part, uid, uid); // the uploader is the pipeline's user: ingress may lease only its own files
    fs.renameSync(part, `${p!.inbox}/after-the-probe.txt`);
    expect((await p!.reportFor('after-the-probe.txt')).report.verdict).toBe('accepted');
  });
});
