/*
 * verify-logged.test - sluice-report/3: a report vouched for by the station's log (its leaf index,
 * a signed tree head and the inclusion proof) verifies with the exit codes of every version, and
 * every single-byte change of it fails: every byte of the report text (body, proof, tree head and
 * its signatures) and of a tree head's own line is replaced by another byte, and verification
 * answers malformed, bad-signature or unknown-key, never ok.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { CONTENT_A, CONTENT_B, factsOf, keysA, keysB, makeBody, makeRejectedBody } from '../test/fixtures.js';
import {
  assembleLogged,
  canonicalBytes,
  checkedTreeHead,
  isCheckedTreeHead,
  EXIT_CODES,
  leafHash,
  LOGGED_REPORT_FORMAT,
  MerkleTree,
  parseReport,
  parseTreeHead,
  ReportFormatError,
  serializeLogged,
  serializeReport,
  serializeTreeHead,
  signTreeHead,
  TREE_HEAD_FORMAT,
  verifyReport,
  validateTreeHead,
  verifyTreeHead,
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

const check = (text: string | Uint8Array, facts = factsOf(CONTENT_A)) => verifyReport({ reportText: text, publicKey: pub, file: facts, reportOnly: false });

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

  /**
   * flips - `bytes` with byte i replaced by another: bit 0 flipped and, outside base64 signatures
   * (where it costs an ML-DSA verification and tells nothing new), a letter's case flipped too.
   */
  const flips = (bytes: Buffer, i: number, inSignature: (i: number) => boolean): Buffer[] => {
    const c = bytes[i]!;
    const other = [c ^ 0x01, ...(/[A-Za-z]/.test(String.fromCharCode(c)) && !inSignature(i) ? [c ^ 0x20] : [])];
    return other.map((b) => {
      const t = Buffer.from(bytes);
      t[i] = b;
      return t;
    });
  };
  /** signatureSpans - inSignature(i) for the base64 of `head`'s two signatures within `text`. */
  const signatureSpans = (text: string) => {
    const spans = [head.signature.ed25519, head.signature.mldsa65].map((sig) => [text.indexOf(sig), text.indexOf(sig) + sig.length] as const);
    for (const [a] of spans) expect(a).toBeGreaterThan(0);
    return (i: number) => spans.some(([a, b]) => i >= a && i < b);
  };

  // About 5,000 ML-DSA verifications: headroom over the suite's timeout on a shared machine.
  it('every single-byte change of the report (body, inclusion proof, tree head, its signatures) fails verification', { timeout: 240_000 }, () => {
    const bytes = Buffer.from(reportA);
    const proofAt = reportA.indexOf('"proof":[');
    const headAt = reportA.indexOf('"head":{');
    expect(proofAt).toBeGreaterThan(0);
    expect(headAt).toBeGreaterThan(0);
    const inSignature = signatureSpans(reportA);
    const seen = new Set<string>();
    for (let i = 0; i < bytes.length; i++) {
      for (const t of flips(bytes, i, inSignature)) {
        const r = check(t);
        expect(r.ok, `offset ${i}`).toBe(false);
        expect(['malformed', 'bad-signature', 'unknown-key'], `offset ${i}: ${r.code}`).toContain(r.code);
        seen.add(r.code);
      }
    }
    // Both kinds of failure occur: a flip in the proof, root or signatures reaches the checks.
    expect([...seen].sort()).toEqual(['bad-signature', 'malformed']);
  });

  it('every single-byte change of a tree head line outside its ML-DSA signature is refused by parseTreeHead or verifyTreeHead', () => {
    // The ML-DSA signature's bytes are the same bytes, checked by the same verifyTreeHead, inside
    // the report above, where every one of them is flipped; here they would double the cost.
    const text = serializeTreeHead(head);
    const line = Buffer.from(text);
    const sig = [text.indexOf(head.signature.mldsa65), text.indexOf(head.signature.mldsa65) + head.signature.mldsa65.length] as const;
    expect(verifyTreeHead(parseTreeHead(text), pub)).toBeNull();
    const inSignature = signatureSpans(text);
    let flipped = 0;
    for (let i = 0; i < line.length; i++) {
      if (i >= sig[0] && i < sig[1]) continue;
      for (const t of flips(line, i, inSignature)) {
        let problem: string | null;
        try {
          problem = verifyTreeHead(parseTreeHead(t.toString('latin1')), pub);
        } catch (err) {
          expect(err, `offset ${i}`).toBeInstanceOf(ReportFormatError);
          problem = (err as Error).message;
        }
        expect(problem, `offset ${i}`).not.toBeNull();
        flipped += 1;
      }
    }
    expect(flipped).toBeGreaterThan(line.length - head.signature.mldsa65.length);
  });
});

const hasPythonCryptography = spawnSync('/usr/bin/python3', ['-c', 'import cryptography'], { stdio: 'ignore' }).status === 0;

describe.skipIf(!hasPythonCryptography)(
  `the independent Python verifier (scripts/verify_report.py)${hasPythonCryptography ? '' : ' [skipped: python3 cannot import cryptography (Debian python3-cryptography)]'}`,
  () => {
    it('checks a sluice-report/3 inclusion proof and the head Ed25519 signature without Sluice code', async () => {
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
  },
);

describe('a tree head checked once for a whole batch (checkedTreeHead, serializeLogged)', () => {
  const inclusion = (i: number, h = head) => ({ index: i, proof: tree.inclusionProof(i, 3), head: h });

  it('gives reports byte for byte the text of an unchecked head, through serializeLogged and serializeReport alike', () => {
    const checked = checkedTreeHead(head);
    for (let i = 0; i < bodies.length; i++) {
      expect(serializeLogged(bodies[i]!, inclusion(i, checked))).toBe(logged(i));
      expect(serializeReport(assembleLogged(bodies[i]!, inclusion(i, checked)))).toBe(logged(i));
      expect(serializeLogged(bodies[i]!, inclusion(i))).toBe(logged(i));
    }
    expect(check(serializeLogged(bodies[1]!, inclusion(1, checked)))).toMatchObject({ code: 'ok' });
  });

  it('is a frozen copy, the very object on a second call; the head it was made from stays as it was', () => {
    const copy = structuredClone(head);
    const checked = checkedTreeHead(copy);
    expect(checked).toEqual(head);
    expect(checked).not.toBe(copy);
    expect(isCheckedTreeHead(checked)).toBe(true);
    expect(isCheckedTreeHead(copy)).toBe(false);
    expect(checkedTreeHead(checked)).toBe(checked);
    expect(Object.isFrozen(checked) && Object.isFrozen(checked.signature)).toBe(true);
    expect(() => {
      (checked as { size: number }).size = 2;
    }).toThrow(TypeError);
    expect(() => {
      (checked.signature as { ed25519: string }).ed25519 = 'AAAA';
    }).toThrow(TypeError);
    copy.size = 2; // the caller's own object is not frozen
    expect(checked.size).toBe(3);
  });

  it('refuses what validateTreeHead refuses, with the same message, and remembers nothing it refused', () => {
    const bad = { ...head, signature: { ...head.signature, ed25519: `${head.signature.ed25519.slice(0, -2)}B=` } };
    const expected = (() => {
      try {
        validateTreeHead(bad);
      } catch (err) {
        return (err as Error).message;
      }
      return 'no error';
    })();
    expect(expected).toMatch(/tree head signature\.ed25519/);
    expect(() => checkedTreeHead(bad)).toThrow(expected);
    expect(isCheckedTreeHead(bad)).toBe(false);
    expect(() => checkedTreeHead({ ...head, size: -1 })).toThrow(/tree head size/);
  });

  it('an equal head that is another object is validated again: a changed copy of a checked head is refused', () => {
    const checked = checkedTreeHead(head);
    const changed = { ...checked, signature: { ...checked.signature, mldsa65: `${checked.signature.mldsa65.slice(0, -1)}*` } };
    expect(() => serializeLogged(bodies[1]!, inclusion(1, changed))).toThrow(ReportFormatError);
    expect(() => serializeLogged(bodies[1]!, inclusion(1, changed))).toThrow(/log\.head: tree head signature\.mldsa65/);
    expect(() => assembleLogged(bodies[1]!, inclusion(1, { ...checked, size: 1 }))).toThrow(/log\.index: must be less than log\.head\.size/);
  });

  it("still checks the report's own members against a checked head: its key and station, the index", () => {
    const checked = checkedTreeHead(head);
    expect(() => serializeLogged({ ...bodies[1]!, station: 'elsewhere' }, inclusion(1, checked))).toThrow(/log\.head\.station/);
    expect(() => serializeLogged(bodies[1]!, { ...inclusion(1, checked), index: 3 })).toThrow(/log\.index/);
  });
});
