#!/usr/bin/env node
/*
 * NAME
 *   make-vector - regenerate the sluice-report/2 and sluice-report/3 test vectors and their copy under docs/
 *
 * SYNOPSIS
 *   npx tsc -b packages/report && node packages/report/scripts/make-vector.mjs
 *
 * DESCRIPTION
 *   Writes packages/report/test-vector/vector.json and, from the same values,
 *   the files of docs/report-vector/ (key files, the file, every report file
 *   and its signed bytes in hex), so that the vector can be checked without
 *   reading packages/. src/vector.test.ts checks that both agree byte for byte.
 *
 *   Everything follows from fixed inputs: the seeds are the bytes 0x00..0x1f
 *   (Ed25519) and 0x20..0x3f (ML-DSA-65), the reports and the file content
 *   are literals below, and ML-DSA signs deterministically (FIPS 204 with
 *   rnd = 32 zero bytes; Ed25519 is deterministic anyway). Running it twice
 *   gives the same files; src/vector.test.ts rebuilds every value from the
 *   same inputs and compares, and verifies the stored reports.
 *
 *   test-vector/vector-v1.json holds sluice-report/1 reports as earlier
 *   versions issued them. It is never regenerated (this version signs only
 *   sluice-report/2); its report files are copied to docs/report-vector/v1-*.
 *
 *   test-vector/vector-v3.json holds the inputs of the sluice-report/3
 *   vector (docs/report-format.md section 8): five report bodies, the log's
 *   leaves in that order, and two batches, each closed by a tree head signed
 *   at a fixed time (sizes 3 and 5, so neither tree is a power of two).
 *   From them: the log directory docs/report-vector/log/ (leaves, heads) as
 *   egress writes it, each report with its inclusion proof under the head of
 *   its batch, the leaf bytes, the heads' signed bytes, every leaf hash and
 *   root, and the consistency proof from size 3 to size 5 as
 *   `sluice log prove log --from 3 --to 5` prints it. logFiles() below and
 *   src/vector.test.ts build these files the same way.
 *
 *   Production signatures are hedged (randomized), so a production report
 *   differs from a re-signing of the same body; only verification is checked.
 */
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as report from '../dist/index.js';

const seeds = {
  ed25519: Uint8Array.from({ length: 32 }, (_, i) => i),
  mldsa65: Uint8Array.from({ length: 32 }, (_, i) => 32 + i),
};
const keys = report.generateKeys(seeds);

// Key files exactly as writeKeyFiles writes them.
const dir = mkdtempSync(join(tmpdir(), 'sluice-vector-'));
let secretKeyFile;
let publicKeyFile;
try {
  const written = report.writeKeyFiles(dir, { keys, name: 'vector' });
  secretKeyFile = readFileSync(written.secretPath, 'utf8');
  publicKeyFile = readFileSync(written.publicPath, 'utf8');
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const content = 'hello, sluice\n';
const size = Buffer.byteLength(content);
const sha256 = createHash('sha256').update(content).digest('hex');
const file = { size, sha256hex: sha256 };
const common = {
  format: report.REPORT_FORMAT,
  station: 'vector-station',
  software: 'sluice 0.1.0',
  key: keys.public.keyId,
  transfer: '01J0VECT0R0000000000000000',
  size,
  sha256,
  times: { received: '2025-01-02T03:04:05.006Z', checked: '2025-01-02T03:04:05.107Z', reported: '2025-01-02T03:04:05.208Z' },
};
const refusal = 'too-large: 5368709120 bytes, over the limit of 1073741824';
const bodies = [
  {
    name: 'accepted',
    label: 'accepted; the original name holds a control character, a bidi override, a quote, a backslash, e-acute and an astral emoji',
    body: {
      ...common,
      name: { original: 'r\u00e9sum\u00e9\u202egpj.exe\u0007"\\\u{1F4C4}.txt', stored: 'resume-gpj.exe.txt' },
      verdict: 'accepted',
      reason: '',
      checks: [
        { name: 'size', result: 'pass', reason: '', engine: 'sluice 0.1.0' },
        { name: 'clamav', result: 'pass', reason: 'OK', engine: 'ClamAV 1.4.6/27500' },
      ],
    },
    expect: { code: 'ok', exitCode: 0 },
  },
  {
    name: 'rejected',
    label: 'rejected: a check failed; verifying it against the file gives code "rejected", with --report-only "ok"',
    body: {
      ...common,
      name: { original: 'invoice.pdf', stored: 'invoice.pdf' },
      verdict: 'rejected',
      reason: 'clamav: Eicar-Test-Signature FOUND',
      checks: [
        { name: 'size', result: 'pass', reason: '', engine: 'sluice 0.1.0' },
        { name: 'clamav', result: 'fail', reason: 'Eicar-Test-Signature FOUND', engine: 'ClamAV 1.4.6/27500' },
      ],
    },
    expect: { code: 'rejected', exitCode: 5 },
  },
  {
    name: 'refused',
    label: 'rejected: refused at pickup (too large), never copied: no digest, the size ingress saw; no file matches it, not even an empty one',
    body: {
      ...common,
      name: { original: 'huge.iso', stored: 'huge.iso' },
      size: 5368709120,
      sha256: null,
      verdict: 'rejected',
      reason: `ingress: refused at pickup: ${refusal}`,
      checks: [{ name: 'ingress', result: 'fail', reason: `refused at pickup: ${refusal}`, engine: '' }],
    },
    expect: { code: 'mismatch', exitCode: 4 },
  },
];

const cases = bodies.map(({ name, label, body, expect }) => {
  const signedBytes = report.canonicalBytes(body);
  const signed = report.signReport(body, keys.secret, { deterministic: true });
  const reportFile = report.serializeReport(signed);
  const res = report.verifyReport({ reportText: reportFile, publicKey: keys.public, file, reportOnly: false });
  if (res.code !== expect.code) throw new Error(`vector case "${label}": got ${res.code}`);
  return {
    name,
    label,
    body,
    signedBytesHex: Buffer.from(signedBytes).toString('hex'),
    signedBytesSha256: createHash('sha256').update(signedBytes).digest('hex'),
    signature: signed.signature,
    reportFile,
    verify: { file, reportOnly: false, ...expect },
  };
});

const vector = {
  description:
    'Sluice report format sluice-report/2 test vector (docs/report-format.md, section 6). Generated by packages/report/scripts/make-vector.mjs; ML-DSA-65 signed deterministically (rnd = 32 zero bytes, empty context). docs/report-vector/ holds the same values as files.',
  seeds: { ed25519Hex: Buffer.from(seeds.ed25519).toString('hex'), mldsa65Hex: Buffer.from(seeds.mldsa65).toString('hex') },
  keyId: keys.public.keyId,
  secretKeyFile,
  publicKeyFile,
  file: { contentUtf8: content, size, sha256 },
  cases,
};

const out = fileURLToPath(new URL('../test-vector/vector.json', import.meta.url));
writeFileSync(out, `${JSON.stringify(vector, null, 2)}\n`);
console.log(`wrote ${out} (key id ${keys.public.keyId})`);

// sluice-report/3: five reports in one log, published by two tree heads.
const logCommon = { ...common, format: report.LOGGED_REPORT_FORMAT };
const at = (ms) => `2025-01-02T03:04:${String(6 + Math.floor(ms / 1000)).padStart(2, '0')}.${String(ms % 1000).padStart(3, '0')}Z`;
const timesAt = (ms) => ({ received: at(ms), checked: at(ms + 40), reported: at(ms + 80) });
const passChecks = [
  { name: 'size', result: 'pass', reason: '', engine: 'sluice 0.1.0' },
  { name: 'clamav', result: 'pass', reason: 'OK', engine: 'ClamAV 1.4.6/27500' },
];
const logCases = [
  {
    label: 'accepted',
    body: { ...logCommon, transfer: '01J0VECT0R0000000000000L00', name: { original: 'hello.txt', stored: 'hello.txt' }, verdict: 'accepted', reason: '', checks: passChecks, times: timesAt(0) },
    expect: { code: 'ok', exitCode: 0 },
  },
  {
    label: 'rejected: a check failed',
    body: {
      ...logCommon,
      transfer: '01J0VECT0R0000000000000L01',
      name: { original: 'invoice.pdf', stored: 'invoice.pdf' },
      verdict: 'rejected',
      reason: 'clamav: Eicar-Test-Signature FOUND',
      checks: [passChecks[0], { name: 'clamav', result: 'fail', reason: 'Eicar-Test-Signature FOUND', engine: 'ClamAV 1.4.6/27500' }],
      times: timesAt(10),
    },
    expect: { code: 'rejected', exitCode: 5 },
  },
  {
    label: 'rejected: refused at pickup, never copied',
    body: {
      ...logCommon,
      transfer: '01J0VECT0R0000000000000L02',
      name: { original: 'huge.iso', stored: 'huge.iso' },
      size: 5368709120,
      sha256: null,
      verdict: 'rejected',
      reason: `ingress: refused at pickup: ${refusal}`,
      checks: [{ name: 'ingress', result: 'fail', reason: `refused at pickup: ${refusal}`, engine: '' }],
      times: timesAt(20),
    },
    expect: { code: 'mismatch', exitCode: 4 },
  },
  {
    label: 'accepted, from a named uploader',
    body: { ...logCommon, transfer: '01J0VECT0R0000000000000L03', name: { original: 'hello.txt', stored: 'hello-1.txt' }, verdict: 'accepted', reason: '', checks: passChecks, times: timesAt(300), uploader: 'alice' },
    expect: { code: 'ok', exitCode: 0 },
  },
  {
    label: 'accepted; the original name holds non-ASCII characters (raw UTF-8 in the leaf, \\u escapes in the file)',
    body: {
      ...logCommon,
      transfer: '01J0VECT0R0000000000000L04',
      name: { original: 'r\u00e9sum\u00e9\u202egpj.exe\u0007"\\\u{1F4C4}.txt', stored: 'resume-gpj.exe.txt' },
      verdict: 'accepted',
      reason: '',
      checks: passChecks,
      times: timesAt(310),
    },
    expect: { code: 'ok', exitCode: 0 },
  },
];
const vectorV3 = {
  description:
    'Sluice report format sluice-report/3 test vector: a transparency log of five reports and two signed tree heads (docs/report-format.md, section 8). Inputs only; packages/report/scripts/make-vector.mjs and src/vector.test.ts build docs/report-vector/log/ and the log-*, head-* and consistency-* files from them. Key, file and signing as in vector.json.',
  leaves: logCases,
  heads: [
    { size: 3, time: '2025-01-02T03:04:06.150Z' },
    { size: 5, time: '2025-01-02T03:04:06.450Z' },
  ],
  consistency: { from: 3, to: 5 },
};
const outV3 = fileURLToPath(new URL('../test-vector/vector-v3.json', import.meta.url));
writeFileSync(outV3, `${JSON.stringify(vectorV3, null, 2)}\n`);
console.log(`wrote ${outV3}`);

const v1 = JSON.parse(readFileSync(fileURLToPath(new URL('../test-vector/vector-v1.json', import.meta.url)), 'utf8'));
const docs = fileURLToPath(new URL('../../../docs/report-vector/', import.meta.url));
mkdirSync(join(docs, 'log'), { recursive: true });
const files = { ...docsFiles(vector, v1), ...logFiles(vectorV3) };
for (const f of readdirSync(docs, { recursive: true })) {
  if (f !== 'README.md' && f !== 'log' && !(f in files)) rmSync(join(docs, f));
}
for (const [name, content] of Object.entries(files)) writeFileSync(join(docs, name), content);
console.log(`wrote ${Object.keys(files).length} files in ${docs}`);

/**
 * docsFiles - name -> content of every generated file of the sluice-report/1 and /2 vectors in
 * docs/report-vector/. The same mapping is in src/vector.test.ts, which checks the directory
 * against both vectors.
 */
function docsFiles(v2, old) {
  const files = { 'vector.key': v2.secretKeyFile, 'vector.pub': v2.publicKeyFile, 'hello.txt': v2.file.contentUtf8 };
  for (const [prefix, v] of [['', v2], ['v1-', old]]) {
    for (const c of v.cases) {
      files[`${prefix}${c.name}.sluice.json`] = c.reportFile;
      files[`${prefix}${c.name}.signed.hex`] = `${c.signedBytesHex}\n`;
    }
  }
  return files;
}

/**
 * logFiles - name -> content (Buffer) of every file of the sluice-report/3 vector in
 * docs/report-vector/, built from its inputs as egress would: each leaf is a report's signed
 * body, each batch ends with a tree head over the whole tree, each report carries the inclusion
 * proof under the head of its batch. src/vector.test.ts builds the same mapping.
 */
function logFiles(v3) {
  const hex = (b) => Buffer.from(b).toString('hex');
  const tree = new report.MerkleTree();
  const leaves = v3.leaves.map((c) => report.canonicalBytes(c.body));
  for (const leaf of leaves) tree.append(report.leafHash(leaf));
  const heads = v3.heads.map(({ size, time }) =>
    report.signTreeHead({ format: report.TREE_HEAD_FORMAT, station: common.station, key: keys.public.keyId, size, root: hex(tree.rootHash(size)), time }, keys.secret, { deterministic: true }),
  );
  const files = {
    'log/leaves': Buffer.concat(leaves.map((l) => report.encodeLeafRecord(l))),
    'log/heads': Buffer.from(heads.map((h) => report.serializeTreeHead(h)).join('')),
  };
  v3.leaves.forEach((c, i) => {
    const head = heads.find((h) => h.size > i);
    const logged = report.assembleLogged(c.body, { index: i, proof: tree.inclusionProof(i, head.size), head });
    const text = report.serializeReport(logged);
    const res = report.verifyReport({ reportText: text, publicKey: keys.public, file, reportOnly: false });
    if (res.code !== c.expect.code) throw new Error(`log vector leaf ${i}: got ${res.code} (${res.reason})`);
    files[`log-${i}.sluice.json`] = Buffer.from(text);
    files[`log-${i}.leaf.hex`] = Buffer.from(`${hex(leaves[i])}\n`);
  });
  for (const h of heads) {
    files[`head-${h.size}.json`] = Buffer.from(report.serializeTreeHead(h));
    files[`head-${h.size}.signed.hex`] = Buffer.from(`${hex(report.treeHeadBytes(h))}\n`);
  }
  const roots = Array.from({ length: tree.size + 1 }, (_, n) => hex(tree.rootHash(n)));
  files['log-hashes.json'] = Buffer.from(`${JSON.stringify({ leafHashes: leaves.map((l) => hex(report.leafHash(l))), roots }, null, 2)}\n`);
  const { from, to } = v3.consistency;
  const toHead = heads.find((h) => h.size === to);
  // The line `sluice log prove log --from 3 --to 5` prints (packages/cli/src/main.ts).
  const prove = { from, to, fromRoot: roots[from], toRoot: roots[to], proof: tree.consistencyProof(from, to).map(hex), ...(toHead ? { head: toHead } : {}) };
  files[`consistency-${from}-${to}.json`] = Buffer.from(`${JSON.stringify(prove)}\n`);
  return files;
}
