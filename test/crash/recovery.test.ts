// Restart recovery, deterministically (the crash test does the same at
// random moments): egress acks a transfer it already delivered again without
// a second copy, also after its own restart; a delivery cut short by a crash
// is finished under the name it journalled, and nobody else takes that name
// meanwhile; leftover temporary files of ingress and egress are removed when
// they start. Nothing here needs an operator.
//
// The test plays transit towards egress (test/hostile/impersonate.ts: the
// real encoders and the native addon), so it decides exactly when a
// transfer comes again. A crash is a SIGKILL; `sluice dev` restarts the
// stage, as systemd would. The states a crash leaves behind between two
// durable steps of egress are made by cutting the journal's last record (a
// done record is never flushed) and removing outputs of a real, signed
// delivery, exactly as the steps in
// packages/egress/src/main.ts order them (journal intent, link file, link
// report, fsync directory, journal complete).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { devConfig } from '../../packages/cli/src/dev.js';
import { loadPublicKey, verifyReport } from '../../packages/report/src/index.js';
import { Peer, newId, sha256, sha256hex, transitRecord } from '../hostile/impersonate.js';
import { Pipeline } from '../support/pipeline.js';
import { journalPath, journalStates, loseLastDone } from '../support/journal.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const REPORT = '.sluice.json';

let p: Pipeline;
let scratch = '';

beforeAll(async () => {
  // Nothing is dropped into the inbox here; keep ingress quiet.
  p = await Pipeline.start((dir) => devConfig(dir, { ingress: { rescanIntervalMs: 60_000 } }));
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-recovery-'));
}, 60_000);
afterAll(async () => {
  await p?.stop();
  if (scratch) fs.rmSync(scratch, { recursive: true, force: true });
});

const outputs = () => fs.readdirSync(p.outbox).sort();

/** stagePid - the pid of the stage `sluice dev` started last. */
const stagePid = (stage: string) => Number(p.events('stage-started').filter((l) => l.which === stage).at(-1)!.childPid);

/** crash - SIGKILL a stage and wait until its successor has started (and, for ingress, recovered its spool). */
async function crash(stage: 'ingress' | 'egress'): Promise<number> {
  const old = stagePid(stage);
  process.kill(old, 'SIGKILL');
  await p.waitFor(() => stagePid(stage) !== old, 30_000, `${stage} restarted`);
  const pid = stagePid(stage);
  await p.waitFor(() => p.lines.some((l) => l.stage === stage && l.event === 'started' && l.pid === pid), 30_000, `${stage} (pid ${pid}) started`);
  return pid;
}

/** connect - a connection to egress, as transit holds it; egress may still be coming up. */
async function connect(): Promise<Peer> {
  const sock = path.join(p.dir, 'run', 'egress.sock');
  for (let i = 0; ; i++) {
    try {
      return await Peer.connect(sock);
    } catch (err) {
      if (i > 200) throw err;
      await sleep(50);
    }
  }
}

/** send - hand egress one transfer of `bytes` (a fresh read-only descriptor each time) and return its ack. */
async function send(id: string, name: string, bytes: Buffer) {
  const f = path.join(scratch, `${id}-${randomBytes(4).toString('hex')}`);
  fs.writeFileSync(f, bytes);
  const fd = fs.openSync(f, 'r');
  const peer = await connect();
  try {
    await peer.send(transitRecord({ id, name, bytes }), fd);
    const ack = await peer.ack(30_000);
    expect(ack, `an ack for ${id}`).not.toBeNull();
    expect(ack!.id).toBe(id);
    expect(Buffer.from(ack!.sha256)).toEqual(sha256(bytes)); // acks carry the id and the digest
    return ack!;
  } finally {
    peer.close();
    fs.closeSync(fd);
  }
}

/** delivered - the outbox holds exactly these bytes under `stored`, with a valid report for them. */
function expectDelivered(stored: string, bytes: Buffer, id: string): void {
  expect(fs.readFileSync(path.join(p.outbox, stored))).toEqual(bytes);
  const reportText = fs.readFileSync(path.join(p.outbox, stored + REPORT), 'utf8');
  const r = verifyReport({ reportText, publicKey: loadPublicKey(p.publicKey), file: { size: bytes.length, sha256hex: sha256hex(bytes) }, reportOnly: false });
  expect(r.ok, JSON.stringify(r)).toBe(true);
  expect((JSON.parse(reportText) as { transfer: string }).transfer).toBe(id);
  expect(journalStates(p.dir).get(id)).toBe('done');
}

const text = (tag: string) => Buffer.from(`${tag}: ${randomBytes(24).toString('hex')}\n`);

describe('restart recovery', () => {
  it('egress acks a transfer it already delivered again, without a second copy: at once, and after its own restart', async () => {
    const id = newId('redeliver');
    const bytes = text('redelivered');
    const before = outputs();
    expect(await send(id, 'redelivered.txt', bytes)).toMatchObject({ status: 'delivered', reason: 'accepted' });
    expect(outputs()).toEqual([...before, 'redelivered.txt', `redelivered.txt${REPORT}`].sort());
    const report = fs.readFileSync(path.join(p.outbox, `redelivered.txt${REPORT}`));

    // The ack was lost (as far as transit knows): the same transfer comes again.
    expect(await send(id, 'redelivered.txt', bytes)).toMatchObject({ status: 'delivered', reason: 'already delivered as redelivered.txt' });
    await crash('egress');
    expect(await send(id, 'redelivered.txt', bytes)).toMatchObject({ status: 'delivered', reason: 'already delivered as redelivered.txt' });

    expect(p.events('duplicate-acked').filter((l) => l.id === id)).toHaveLength(2);
    expect(outputs()).toEqual([...before, 'redelivered.txt', `redelivered.txt${REPORT}`].sort());
    expect(fs.readFileSync(path.join(p.outbox, `redelivered.txt${REPORT}`))).toEqual(report); // not even re-signed
    expectDelivered('redelivered.txt', bytes, id);
  });

  it('a crash between linking the file and linking its report: the transfer comes again and egress finishes the same delivery', async () => {
    const id = newId('half');
    const bytes = text('half delivered');
    expect(await send(id, 'half.txt', bytes)).toMatchObject({ status: 'delivered' });
    // What a power cut after "link file", before "link report", leaves: journal intent, the file, no report.
    loseLastDone(p.dir, id);
    fs.rmSync(path.join(p.outbox, `half.txt${REPORT}`));
    await crash('egress');

    expect(await send(id, 'half.txt', bytes)).toMatchObject({ status: 'delivered', reason: 'accepted' });
    expect(outputs().filter((n) => n.startsWith('half'))).toEqual(['half.txt', `half.txt${REPORT}`]);
    expectDelivered('half.txt', bytes, id);
  });

  it('an unfinished delivery journalled by a version that wrote sluice-report/1 is finished with a sluice-report/3 report', async () => {
    const id = newId('upgraded');
    const bytes = text('journalled before an upgrade');
    expect(await send(id, 'upgraded.txt', bytes)).toMatchObject({ status: 'delivered' });
    // A power cut after "link file", and the software upgraded meanwhile: the intent names the old format.
    loseLastDone(p.dir, id);
    fs.rmSync(path.join(p.outbox, `upgraded.txt${REPORT}`));
    const journal = fs.readFileSync(journalPath(p.dir), 'utf8');
    const intent = journal.split('\n').find((l) => l.includes('"op":"intend"') && l.includes(`"id":"${id}"`))!;
    expect(intent).toContain('"format":"sluice-report/3"');
    fs.writeFileSync(journalPath(p.dir), journal.replace(intent, intent.replace('"format":"sluice-report/3"', '"format":"sluice-report/1"')));
    await crash('egress');

    expect(await send(id, 'upgraded.txt', bytes)).toMatchObject({ status: 'delivered', reason: 'accepted' });
    expectDelivered('upgraded.txt', bytes, id);
    const report = JSON.parse(fs.readFileSync(path.join(p.outbox, `upgraded.txt${REPORT}`), 'utf8')) as { format: string; log: object };
    expect(report.format).toBe('sluice-report/3');
    expect(report).not.toHaveProperty('signature');
    expect(report.log).toMatchObject({ index: expect.any(Number) });
  });

  it('a power cut that keeps the report link and loses the file link and the done record: the delivery is finished, not acked as done', async () => {
    const id = newId('torn');
    const bytes = text('torn links');
    expect(await send(id, 'torn.txt', bytes)).toMatchObject({ status: 'delivered' });
    // The directory's fsync never happened: of the two links only the report's reached the disk.
    loseLastDone(p.dir, id);
    fs.rmSync(path.join(p.outbox, 'torn.txt'));
    await crash('egress');

    expect(await send(id, 'torn.txt', bytes)).toMatchObject({ status: 'delivered', reason: 'accepted' });
    expect(outputs().filter((n) => n.startsWith('torn'))).toEqual(['torn.txt', `torn.txt${REPORT}`]);
    expectDelivered('torn.txt', bytes, id);
  });

  it('a crash after journalling, before linking anything: the journalled name stays reserved across the restart and the delivery is finished under it', async () => {
    const id = newId('intent');
    const bytes = text('intended');
    expect(await send(id, 'intent.txt', bytes)).toMatchObject({ status: 'delivered' });
    // What a power cut after "journal intent" leaves: the intent only.
    loseLastDone(p.dir, id);
    fs.rmSync(path.join(p.outbox, 'intent.txt'));
    fs.rmSync(path.join(p.outbox, `intent.txt${REPORT}`));
    await crash('egress');

    // Another upload of the same name arrives first: it must not take the name promised to the first.
    const otherId = newId('other');
    const other = text('another upload, same name');
    expect(await send(otherId, 'intent.txt', other)).toMatchObject({ status: 'delivered', reason: 'accepted' });
    expect(fs.existsSync(path.join(p.outbox, 'intent.txt'))).toBe(false);
    expectDelivered('intent (2).txt', other, otherId);

    expect(await send(id, 'intent.txt', bytes)).toMatchObject({ status: 'delivered', reason: 'accepted' });
    expect(outputs().filter((n) => n.startsWith('intent'))).toEqual(['intent (2).txt', `intent (2).txt${REPORT}`, 'intent.txt', `intent.txt${REPORT}`]);
    expectDelivered('intent.txt', bytes, id);
  });

  it('leftover temporary files of ingress and egress are removed when they start again', async () => {
    const spool = path.join(p.dir, 'ingress');
    const leftovers = [
      path.join(spool, '.tmp-interrupted-copy.data'), // a copy cut short
      path.join(spool, '.tmp-0123456789abcdef'), // a metadata write cut short
      path.join(spool, 'orphan-0123.data'), // a copy renamed into place, its metadata never written
      path.join(p.dir, 'egress', '.tmp-0123456789abcdef'), // a rewrite of the journal cut short
    ];
    for (const f of leftovers) fs.writeFileSync(f, randomBytes(1000), { mode: 0o600 });
    const mark = p.lines.length;
    const ingressPid = await crash('ingress');
    await crash('egress');
    await p.waitFor(() => p.lines.slice(mark).some((l) => l.event === 'recovered' && l.pid === ingressPid), 30_000, 'ingress recovered its spool');
    const recovered = p.lines.slice(mark).find((l) => l.event === 'recovered' && l.pid === ingressPid)!;
    expect(recovered).toMatchObject({ queued: 0, removed: 3 });
    expect(leftovers.filter((f) => fs.existsSync(f))).toEqual([]);
    // And the station still works end to end afterwards.
    const bytes = text('after the cleanup');
    p.drop('after-cleanup.txt', bytes);
    const found = await p.reportFor('after-cleanup.txt', 30_000);
    expect(found.report.verdict).toBe('accepted');
    expect(fs.readFileSync(path.join(p.outbox, 'after-cleanup.txt'))).toEqual(bytes);
  });
});
