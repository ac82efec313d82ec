// treehead + logfile: a signed tree head survives its file spelling and nothing else does (every
// single-byte change fails); a log directory audits clean, and any changed, removed or reordered
// leaf or head is named as the first inconsistency.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { keysA, keysB, makeBody } from '../test/fixtures.js';
import {
  auditLog,
  canonicalBytes,
  checkLeaf,
  encodeLeafRecord,
  leafHash,
  LOG_FILES,
  MerkleTree,
  parseTreeHead,
  ReportFormatError,
  serializeTreeHead,
  signTreeHead,
  treeHeadBytes,
  TREE_HEAD_FORMAT,
  validateTreeHead,
  verifyTreeHead,
  type SignedTreeHead,
} from './index.js';

const body = (size: number, root: string) => ({
  format: TREE_HEAD_FORMAT,
  station: 'st\u00e9tion',
  key: keysA.public.keyId,
  size,
  root,
  time: '2026-12-05T10:00:00.123Z',
});

describe('tree heads', () => {
  const head = signTreeHead(body(3, 'cd'.repeat(32)), keysA.secret);
  const text = serializeTreeHead(head);

  it('round-trips through its one file spelling and verifies under its key only', () => {
    expect(text).toMatch(/^\{"format":"sluice-treehead\/1","key":"[0-9a-f]{32}","root":"(cd){32}","signature":\{/);
    expect(text.endsWith('}\n')).toBe(true);
    expect(parseTreeHead(text)).toEqual(head);
    expect(verifyTreeHead(head, keysA.public)).toBeNull();
    expect(verifyTreeHead(head, keysB.public)).toMatch(/signed by key .* the public key given is/);
    expect(Buffer.from(treeHeadBytes(head)).toString('latin1')).toMatch(/^sluice-treehead\/1\0\{"format"/);
  });

  it('every single-byte change of the file fails to parse or to verify', () => {
    for (let i = 0; i < text.length - 1; i++) {
      const c = text.charCodeAt(i);
      const flippedChar = String.fromCharCode(c === 0x7e ? 0x7d : c + 1);
      const t = text.slice(0, i) + flippedChar + text.slice(i + 1);
      let verdict: string | null;
      try {
        verdict = verifyTreeHead(parseTreeHead(t), keysA.public);
      } catch (err) {
        expect(err).toBeInstanceOf(ReportFormatError);
        continue;
      }
      expect(verdict, `offset ${i}`).not.toBeNull();
    }
  });

  it('refuses members it does not know, wrong types and another label, naming them', () => {
    const raw = JSON.parse(text) as Record<string, unknown>;
    const bad = (over: Record<string, unknown>) => () => validateTreeHead({ ...raw, ...over });
    expect(bad({ size: -1 })).toThrow(/tree head size/);
    expect(bad({ size: 1.5 })).toThrow(/tree head size/);
    expect(bad({ root: 'CD'.repeat(32) })).toThrow(/tree head root/);
    expect(bad({ format: 'sluice-report/2' })).toThrow(/tree head format/);
    expect(bad({ extra: 1 })).toThrow(/unknown member/);
    expect(bad({ time: '2026-02-30T00:00:00Z' })).toThrow(/tree head time/);
    expect(() => signTreeHead(body(1, 'cd'.repeat(32)), keysB.secret)).toThrow(/not the id of the signing key/);
  });
});

describe('auditing a log directory', () => {
  let dir: string;
  let heads: SignedTreeHead[];
  const leaves = Array.from({ length: 9 }, (_, i) => canonicalBytes(makeBody(keysA.public.keyId, Buffer.from(`file ${i}`))));

  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-logfile-'));
    const tree = new MerkleTree();
    for (const l of leaves) tree.append(leafHash(l));
    heads = [2, 5, 5, 9].map((n) => signTreeHead(body(n, tree.rootHash(n).toString('hex')), keysA.secret));
    write(leaves, heads);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function write(ls: Uint8Array[], hs: SignedTreeHead[]): void {
    fs.writeFileSync(path.join(dir, LOG_FILES.leaves), Buffer.concat(ls.map(encodeLeafRecord)));
    fs.writeFileSync(path.join(dir, LOG_FILES.heads), hs.map(serializeTreeHead).join(''));
  }

  it('a log as egress writes it audits clean', () => {
    expect(auditLog(dir, keysA.public)).toEqual({ ok: true, leaves: 9, heads: 4, unpublished: 0 });
    expect(checkLeaf(leaves[0]!)).toBeNull();
  });

  it('a record being written after the last head is counted, not an inconsistency; a cut covered leaf is one', () => {
    const rec = encodeLeafRecord(canonicalBytes(makeBody(keysA.public.keyId, Buffer.from('in flight'))));
    fs.appendFileSync(path.join(dir, LOG_FILES.leaves), rec.subarray(0, 40));
    expect(auditLog(dir, keysA.public)).toEqual({ ok: true, leaves: 9, heads: 4, unpublished: 0, partialBytes: 40 });
    const whole = Buffer.concat(leaves.map(encodeLeafRecord));
    fs.writeFileSync(path.join(dir, LOG_FILES.leaves), whole.subarray(0, whole.length - 3));
    expect(auditLog(dir, keysA.public).problem).toMatch(/^tree head 4 \(size 9\): covers 9 leaves, the log holds 8/);
  });

  it('a removed leaf is named', () => {
    write([...leaves.slice(0, 3), ...leaves.slice(4)], heads);
    expect(auditLog(dir, keysA.public)).toMatchObject({ ok: false, problem: expect.stringMatching(/^tree head 2 \(size 5\): root .* is not the root of leaves 0\.\.4/) });
    write(leaves.slice(0, 8), heads);
    expect(auditLog(dir, keysA.public).problem).toMatch(/^tree head 4 \(size 9\): covers 9 leaves, the log holds 8/);
  });

  it('every changed byte of a leaf is named', () => {
    const file = fs.readFileSync(path.join(dir, LOG_FILES.leaves));
    for (let i = 0; i < file.length; i += 7) {
      const f = Buffer.from(file);
      f[i] = f[i]! ^ 0x20;
      fs.writeFileSync(path.join(dir, LOG_FILES.leaves), f);
      const a = auditLog(dir, keysA.public);
      expect(a.ok, `offset ${i}`).toBe(false);
      expect(a.problem).toMatch(/^(leaf \d+|leaves:|tree head \d+)/);
    }
  });

  it('a head that was changed, dropped from the middle, reordered or signed by another key is named', () => {
    const text = fs.readFileSync(path.join(dir, LOG_FILES.heads), 'latin1');
    fs.writeFileSync(path.join(dir, LOG_FILES.heads), text.replace('"size":5', '"size":6'));
    expect(auditLog(dir, keysA.public).problem).toMatch(/^tree head 2 \(size 6\): tree head: Ed25519 and ML-DSA-65 signatures do not verify/);
    write(leaves, [heads[0]!, heads[3]!, heads[1]!]);
    expect(auditLog(dir, keysA.public).problem).toMatch(/^tree head 3 \(size 5\): smaller than tree head 2/);
    write(leaves, heads.map((h, i) => (i === 2 ? signTreeHead({ ...body(h.size, h.root), key: keysB.public.keyId }, keysB.secret) : h)));
    expect(auditLog(dir, keysA.public).problem).toMatch(/^tree head 3 \(size 5\): tree head is signed by key/);
    fs.writeFileSync(path.join(dir, LOG_FILES.heads), `${text}{"format"`);
    expect(auditLog(dir, keysA.public).problem).toMatch(/^heads: the last line .* has no newline/);
  });

  it('a leaf that is not a report body is named', () => {
    write([...leaves.slice(0, 2), Buffer.from('sluice-report/2\0{}')], []);
    expect(auditLog(dir, keysA.public).problem).toMatch(/^leaf 2 \(offset \d+\): not a report body/);
  });
});
