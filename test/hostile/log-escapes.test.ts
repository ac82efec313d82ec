/*
 * NAME
 *   log-escapes - no terminal escape or bidi control from a peer or an uploader reaches a log line
 *
 * DESCRIPTION
 *   The uploader writes names and contents; a compromised ingress writes
 *   any record to transit (a `refusal` text, names, ids), a compromised
 *   transit any record to egress (check names, reasons and engines). Each
 *   of those strings is carried with ESC, C1 CSI (U+009B), RLO (U+202E),
 *   zero-width characters, bidi isolates, DEL and newlines, and checked in
 *   every log line of the whole pipeline the way an operator reads it:
 *   every line parses as JSON, and no string value in it, at any depth,
 *   decodes (as `jq -r` would) to a control, format, line or paragraph
 *   separator character. Each peer's attack goes through Target.attack, so
 *   the stage keeps serving: same pid, a clean file delivered afterwards,
 *   one event naming the attack, no descriptor leaked; the uploads are
 *   followed by a clean delivery as well.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { Target } from './harness.js';
import { newId, rawField, sha256 } from './impersonate.js';
import type { LogLine } from '../support/pipeline.js';

/** Every character an operator's terminal must never receive raw from a log line. */
const HOSTILE = '\u001b[2J\u001b]0;pwned\u0007|\u009b31m|\u202etxt.exe|\u200b\u200d\ufeff|\u2066x\u2069|\u007f|line\nbreak\r\u2028\u2029';

/** UNSAFE - what an escaped log string never contains once decoded. */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;

/** unsafeStrings - every string value (and key) of a parsed log line, at any depth, that holds an UNSAFE character. */
function unsafeStrings(v: unknown, where = '', out: string[] = []): string[] {
  if (typeof v === 'string') {
    if (UNSAFE.test(v)) out.push(`${where}: ${JSON.stringify(v)}`);
  } else if (Array.isArray(v)) {
    v.forEach((x, i) => unsafeStrings(x, `${where}[${i}]`, out));
  } else if (typeof v === 'object' && v !== null) {
    for (const [k, x] of Object.entries(v)) {
      if (UNSAFE.test(k)) out.push(`${where}: key ${JSON.stringify(k)}`);
      unsafeStrings(x, where === '' ? k : `${where}.${k}`, out);
    }
  }
  return out;
}

/** expectCleanLogs - every line of every stage parsed, and nothing unsafe in any string of any line. */
function expectCleanLogs(lines: LogLine[]): void {
  expect(lines.filter((l) => l.event === 'unparsed')).toEqual([]);
  const bad = lines.flatMap((l) => unsafeStrings(l).map((s) => `${String(l.stage)}/${String(l.event)} ${s}`));
  expect(bad).toEqual([]);
}

/** file - a scratch file of the attacker's with these bytes, opened read-only. */
function openBytes(t: Target, bytes: Buffer, fds: number[]): number {
  const fd = fs.openSync(t.file(bytes), 'r');
  fds.push(fd);
  return fd;
}

describe('a compromised ingress and a hostile uploader (transit, through sluice dev)', () => {
  let t: Target;
  beforeAll(async () => {
    t = await Target.start('transit');
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('a refusal text full of escapes: rejected, and escaped in every log line', async () => {
    const bytes = Buffer.alloc(0);
    let id = '';
    await t.attack(
      'hostile refusal',
      async (a) => {
        const fd = openBytes(t, bytes, a.fds);
        const peer = await t.connect(a);
        id = newId('refusal');
        a.ids.add(id);
        await peer.send(t.record({ id, name: `refused${HOSTILE}.txt`, bytes, refusal: `symlink: ${HOSTILE}` }), fd);
        const ack = await peer.ack();
        expect(ack).toMatchObject({ id, status: 'delivered', reason: 'rejected' });
      },
      { event: 'checked', reason: /^ingress: refused at pickup: symlink: / },
    );
    const checked = t.p.lines.find((l) => l.stage === 'transit' && l.event === 'checked' && l.id === id)!;
    // Escaped, not dropped: the operator still sees what ingress claimed, in \u{…} form.
    expect(checked.reason).toContain('\\u{1b}[2J');
    expect(checked.reason).toContain('\\u{9b}31m');
    expect(checked.reason).toContain('\\u{202e}txt.exe');
    expectCleanLogs(t.p.lines);
  });

  it('an id and a name carrying escapes: refused by the decoder, logged escaped', async () => {
    await t.attack(
      'hostile id',
      async (a) => {
        const bytes = Buffer.from('x\n');
        const fd = openBytes(t, bytes, a.fds);
        const peer = await t.connect(a);
        // id (1) and name (2) by hand: the encoder would refuse this id.
        const record = Buffer.concat([
          rawField(1, `id${HOSTILE}`),
          rawField(2, `n${HOSTILE}`),
          rawField(3, bytes.length),
          rawField(4, sha256(bytes)),
          rawField(5, 1),
          rawField(6, new Date().toISOString()),
        ]);
        await peer.send(record, fd);
      },
      { event: 'record-refused', reason: 'bad-id' },
    );
    expectCleanLogs(t.p.lines);
  });

  it('an upload whose name and contents make every check explain itself in hostile text', async () => {
    const uploads: [string, Buffer][] = [
      // Markup with a script: the active-content check quotes what it found.
      [`page${HOSTILE}.html`, Buffer.from(`<html><script>${HOSTILE}alert(1)</script>${HOSTILE}</html>\n`)],
      // Text with controls in it: the text check names them; the name's extension does not match.
      [`notes${HOSTILE}.pdf`, Buffer.from(`plain words ${HOSTILE} and more\n`)],
      // Binary bytes under a text name.
      [`data${HOSTILE}.txt`, Buffer.concat([Buffer.from(HOSTILE), randomBytes(64), Buffer.from([0, 0x9b, 0x1b])])],
    ];
    for (const [name, bytes] of uploads) t.p.drop(name, bytes);
    for (const [name] of uploads) {
      const found = await t.p.reportFor(name, 60_000);
      expect(found.report.name.original).toBe(name);
    }
    // The pipeline still serves after them.
    await t.deliverClean('hostile uploads');
    // The check reasons were logged (escaped), not left out.
    expect(t.p.lines.some((l) => l.event === 'checked' && typeof l.reason === 'string' && l.reason.includes('\\u{'))).toBe(true);
    expectCleanLogs(t.p.lines);
  });
});

describe('a compromised transit (egress, through sluice dev)', () => {
  let t: Target;
  beforeAll(async () => {
    t = await Target.start('egress');
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('check names, reasons and engines full of escapes: delivered as a rejection, escaped in every log line', async () => {
    const bytes = Buffer.from('a file transit says it rejected\n');
    await t.attack(
      'hostile check reasons',
      async (a) => {
        const fd = openBytes(t, bytes, a.fds);
        const peer = await t.connect(a);
        const id = newId('reasons');
        a.ids.add(id);
        const checks = [
          { name: `clamav${HOSTILE}`, outcome: 'fail' as const, reason: `FOUND Eicar${HOSTILE}.UNOFFICIAL`, engine: `ClamAV${HOSTILE}` },
          { name: 'yara', outcome: 'fail' as const, reason: `matched YARA rule: r${HOSTILE}`, engine: `yara ${HOSTILE}` },
        ];
        await peer.send(t.record({ id, name: `virus${HOSTILE}.txt`, bytes, verdict: 'rejected', checks }), fd);
        const ack = await peer.ack();
        expect(ack).toMatchObject({ id, status: 'delivered', reason: 'rejected' });
      },
      { event: 'delivered', reason: /^clamav/ },
    );
    expectCleanLogs(t.p.lines);
  });
});
