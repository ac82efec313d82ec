/*
 * verify-logged.test - sluice-report/3: a report vouched for by the station's log (its leaf index,
 * a signed tree head and the inclusion proof) verifies with the exit codes of every version, and
 * every single-byte change of it fails. Cost as in verify.test: every byte outside the ML-DSA
 * signature is flipped; inside it, every 11th.
 */
import { describe, expect, it } from 'vitest';
import { CONTENT_A, CONTENT_B, factsOf, keysA, keysB, makeBody, makeRejectedBody } from '../test/fixtures.js';
import {
  assembleLogged,
  canonicalBytes,
  EXIT_CODES,
  leafHash,
  LOGGED_REPORT_FORMAT,
  MerkleTree,
  parseReport,
  serializeReport,
  signTreeHead,
  TREE_HEAD_FORMAT,
  verifyReport,
  type ReportBody,
} from './index.js';

const pub = keysA.public;
const bodies: ReportBody[] = [
  { ...makeBody(pub.keyId, CONTENT_B, { transfer: 'T0000' }), format: LOGGED_REPORT_FORMAT },
  { ...makeBody(pub.keyId, CONTENT_A), format: LOGGED_REPORT_FORMAT },
  { ...makeRejectedBody(pub.keyId, CONTENT_A), format: LOGGED_REPORT_FORMAT, transfer: 'T0009' },
];
const tree = new MerkleTree();
for (const b of bodies) tree.append(leafHash(canonicalBytes(b)));
const head = signTreeHead(
  { format: TREE_HEAD_FORMAT, station: bodies[0]!.station, key: pub.keyId, size: 3, root: tree.rootHash(3).toString('hex'), time: '2026-12-05T10:00:00Z' },
  keysA.secret,
);
const logged = (i: number) => serializeReport(assembleLogged(bodies[i]!, { index: i, proof: tree.inclusionProof(i, 3), head }));
const reportA = logged(1);

const check = (text: string, facts = factsOf(CONTENT_A)) => verifyReport({ reportText: text, publicKey: pub, file: facts, reportOnly: false });

describe('sluice-report/3', () => {
  it('verifies: accepted 0, rejected 5, another file 4, another key 7', () => {
    expect(JSON.parse(reportA)).toMatchObject({ format: 'sluice-report/3', log: { index: 1, proof: expect.any(Array), head: { size: 3 } } });
    expect(JSON.parse(reportA)).not.toHaveProperty('signature');
    expect(parseReport(reportA).log?.index).toBe(1);
    expect(check(reportA)).toMatchObject({ ok: true, code: 'ok', exitCode: 0 });
    expect(check(logged(2))).toMatchObject({ code: 'rejected', exitCode: EXIT_CODES.rejected });
    expect(check(reportA, factsOf(CONTENT_B))).toMatchObject({ code: 'mismatch', exitCode: EXIT_CODES.mismatch });
    expect(verifyReport({ reportText: reportA, publicKey: keysB.public, file: factsOf(CONTENT_A), reportOnly: false })).toMatchObject({ code: 'unknown-key' });
    expect(verifyReport({ reportText: logged(0), publicKey: pub, reportOnly: true })).toMatchObject({ code: 'ok' });
  });

  it('a proof for another index, or under a head of another size, is a bad signature', () => {
    const doc = JSON.parse(reportA) as { log: { index: number; proof: string[] } };
    const moved = (over: object) => serializeReport({ ...parseReport(reportA), log: { ...parseReport(reportA).log!, ...over } } as never);
    expect(check(moved({ index: 0 }))).toMatchObject({ code: 'bad-signature', reason: expect.stringMatching(/inclusion proof/) });
    expect(check(moved({ proof: doc.log.proof.slice(1) }))).toMatchObject({ code: 'bad-signature' });
    expect(() => moved({ index: 3 })).toThrow(/log.index: must be less than log.head.size/);
  });

  it('every single-byte change of the report fails verification', () => {
    const sig = JSON.parse(reportA).log.head.signature.mldsa65 as string;
    const start = reportA.indexOf(sig);
    for (let i = 0; i < reportA.length - 1; i++) {
      if (i >= start && i < start + sig.length && (i - start) % 11 !== 0) continue;
      const c = reportA.charCodeAt(i);
      const t = reportA.slice(0, i) + String.fromCharCode(c === 0x7e ? 0x7d : c + 1) + reportA.slice(i + 1);
      const r = check(t);
      expect(r.ok, `offset ${i}`).toBe(false);
      expect(['malformed', 'bad-signature', 'unknown-key'], `offset ${i}: ${r.code}`).toContain(r.code);
    }
  });
});

describe('the independent Python verifier (scripts/verify_report.py)', () => {
  it('checks a sluice-report/3 inclusion proof and the head Ed25519 signature without Sluice code', async () => {
    const { spawnSync } = await import('node:child_process');
    const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { fileURLToPath } = await import('node:url');
    const { encodePublicKey } = await import('./index.js');
    const script = fileURLToPath(new URL('../scripts/verify_report.py', import.meta.url));
    const tmp = mkdtempSync(join(tmpdir(), 'sluice-py3-'));
    try {
      writeFileSync(join(tmp, 'k.pub'), encodePublicKey(pub));
      writeFileSync(join(tmp, 'f'), CONTENT_A);
      const run = (text: string) => {
        writeFileSync(join(tmp, 'r.json'), text);
        return spawnSync('/usr/bin/python3', [script, join(tmp, 'r.json'), join(tmp, 'k.pub'), join(tmp, 'f'), '--skip-mldsa'], { encoding: 'utf8' });
      };
      const ok = run(reportA);
      expect(ok.stdout).toMatch(/Ed25519 ok; ML-DSA-65 NOT checked/);
      expect(ok.status).toBe(10);
      const proofAt = reportA.indexOf('"proof":["') + 10;
      const c = reportA.charCodeAt(proofAt);
      expect(run(reportA.slice(0, proofAt) + String.fromCharCode(c === 0x30 ? 0x31 : 0x30) + reportA.slice(proofAt + 1)).status).toBe(3);
      expect(run(reportA.replace('"transfer":"T0001"', '"transfer":"T0002"')).status).toBe(3);
      const sizeAt = reportA.indexOf('"size":3,');
      expect(run(reportA.slice(0, sizeAt) + '"size":4,' + reportA.slice(sizeAt + 9)).status).toBe(3);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });
});
