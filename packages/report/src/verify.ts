/*
 * NAME
 *   verify - decide whether a report vouches for a file: the logic behind `sluice verify`
 *
 * SYNOPSIS
 *   import { verifyReport, verifyResultJson, EXIT_CODES, EXIT_USAGE } from '@sluice/report';
 *   verifyReport({ reportText, publicKey, file, reportOnly }): VerifyResult
 *   verifyResultJson(result: VerifyResult): string
 *
 * DESCRIPTION
 *   verifyReport never throws for any report text; a text it cannot read is
 *   code 'malformed'. It throws TypeError only when called wrongly (no file
 *   facts without reportOnly, a file digest that is not 64 lowercase hex).
 *
 *   Steps, first failure wins:
 *     1. parseReport (strict, canonical spelling)          -> 'malformed'     exit 6
 *     2. report "key" equals the id of the given key       -> 'unknown-key'   exit 7
 *     3. Ed25519 AND ML-DSA-65 verify over canonicalBytes  -> 'bad-signature' exit 3
 *        (sluice-report/3: both verify over the tree head's
 *        signed bytes, and the inclusion proof leads from
 *        the leaf hash of canonicalBytes to the head's root)
 *     (reportOnly stops here: 'ok', whatever the verdict)
 *     4. the report vouches for bytes (not an upload never
 *        copied), and the file's size and SHA-256 equal them -> 'mismatch'      exit 4
 *     5. verdict is "accepted"                              -> 'rejected'      exit 5
 *     otherwise 'ok', exit 0. Exit 2 is the CLI's usage error, 1 an internal error.
 *
 *   Step 4 comes before step 5: a report about other bytes says nothing
 *   about this file, whatever its verdict. A report of an upload refused at
 *   pickup (neverCopied) is about no bytes at all, so no file matches it:
 *   not even an empty one, which a sluice-report/1 refusal (size 0, the
 *   digest of empty input) would otherwise seem to describe.
 *
 *   `report` is in the result only when both signatures verified (codes
 *   'ok', 'mismatch', 'rejected'): unauthenticated content is never handed
 *   on. `reason` is one line of printable ASCII; text taken from the report
 *   is quoted and escaped.
 *
 * SEE ALSO
 *   docs/report-format.md (exit codes, JSON result)
 */
import { hybridVerify } from './_hybrid.js';
import { isLowerHex } from './_codec.js';
import { quote, ReportFormatError } from './errors.js';
import { asciiJson } from './jcs.js';
import type { PublicKey } from './keys.js';
import { leafHash, verifyInclusion } from './merkle.js';
import { rootBytes, verifyTreeHead } from './treehead.js';
import { canonicalBytes, neverCopied, parseReport, signatureBytes, type ReportBody, type SignedReport } from './report.js';

export type VerifyCode = 'ok' | 'bad-signature' | 'mismatch' | 'rejected' | 'malformed' | 'unknown-key';

/** Exit codes of `sluice verify`, one per outcome. */
export const EXIT_CODES: Readonly<Record<VerifyCode, number>> = Object.freeze({
  ok: 0,
  'bad-signature': 3,
  mismatch: 4,
  rejected: 5,
  malformed: 6,
  'unknown-key': 7,
});
/** Exit code for a usage error (bad arguments, unreadable FILE or key); reserved for the CLI. */
export const EXIT_USAGE = 2;
/** Exit code for an internal error (a bug); reserved for the CLI. */
export const EXIT_INTERNAL = 1;

/** FileFacts - what hashFile measured of the file being checked. */
export interface FileFacts {
  size: number;
  sha256hex: string;
}

export interface VerifyOptions {
  /** The report file's contents (bytes as read, or a string). */
  reportText: string | Uint8Array;
  publicKey: PublicKey;
  /** Size and digest of the file; required unless reportOnly. */
  file?: FileFacts | undefined;
  /** Check the signature only (e.g. a rejection report, which has no file). */
  reportOnly: boolean;
}

export interface VerifyResult {
  ok: boolean;
  code: VerifyCode;
  exitCode: number;
  /** One line of printable ASCII. */
  reason: string;
  /** Present only when both signatures verified. */
  report?: SignedReport;
}

/** result - build a VerifyResult. */
function result(code: VerifyCode, reason: string, report?: SignedReport): VerifyResult {
  return report === undefined
    ? { ok: code === 'ok', code, exitCode: EXIT_CODES[code], reason }
    : { ok: code === 'ok', code, exitCode: EXIT_CODES[code], reason, report };
}

/** verifyReport - run the checks of DESCRIPTION; returns, never throws, for any report text. */
export function verifyReport(options: VerifyOptions): VerifyResult {
  const { reportText, publicKey, file, reportOnly } = options;
  if (!reportOnly) {
    if (!file || !Number.isSafeInteger(file.size) || file.size < 0 || !isLowerHex(file.sha256hex, 64)) {
      throw new TypeError('verifyReport: file {size, sha256hex} is required unless reportOnly');
    }
  }
  let report: SignedReport;
  try {
    report = parseReport(reportText);
  } catch (err) {
    if (err instanceof ReportFormatError) return result('malformed', `malformed report: ${oneLine(err.message)}`);
    throw err;
  }
  if (report.key !== publicKey.keyId) {
    return result('unknown-key', `unknown key: report is signed by key ${report.key}, the public key given is ${publicKey.keyId}`);
  }
  if (report.log) {
    // sluice-report/3: the tree head is signed, and the proof puts this body's bytes under it.
    const problem = verifyTreeHead(report.log.head, publicKey);
    if (problem) return result('bad-signature', `bad signature: ${oneLine(problem)}`);
    const proof = report.log.proof.map((h) => Buffer.from(h, 'hex'));
    if (!verifyInclusion(leafHash(canonicalBytes(report)), report.log.index, report.log.head.size, proof, rootBytes(report.log.head))) {
      return result('bad-signature', `bad signature: the inclusion proof does not put this report at index ${report.log.index} of the signed tree head (size ${report.log.head.size})`);
    }
  } else {
    const failed = signatureProblem(report, publicKey);
    if (failed) return result('bad-signature', failed);
  }
  if (reportOnly) {

    return result('ok', `signature ok: ${report.verdict} report for transfer ${quote(report.transfer)}, ${describeFile(report)}`, report);
  }
  const facts = file as FileFacts;
  if (neverCopied(report)) {
    return result('mismatch', `file does not match report: the report is about an upload refused at pickup and never copied; it vouches for no bytes (${quote(report.reason, 200)})`, report);
  }
  if (facts.size !== report.size) {
    return result('mismatch', `file does not match report: size ${facts.size}, report says ${report.size}`, report);
  }
  if (facts.sha256hex !== report.sha256) {
    return result('mismatch', `file does not match report: sha256 ${facts.sha256hex}, report says ${report.sha256}`, report);
  }
  if (report.verdict !== 'accepted') {
    return result('rejected', `verdict rejected: ${quote(report.reason, 200)}`, report);
  }
  return result('ok', `ok: accepted, signature and digest match (${describeFile(report)})`, report);
}

/** signatureProblem - null when the report's own two signatures verify (sluice-report/1, /2), else the reason. */
function signatureProblem(report: SignedReport, publicKey: PublicKey): string | null {
  const check = hybridVerify(canonicalBytes(report), signatureBytes(report), publicKey);
  if (check.ed25519 && check.mldsa65) return null;
  const what = !check.ed25519 && !check.mldsa65
    ? 'Ed25519 and ML-DSA-65 signatures do not verify'
    : !check.ed25519
      ? 'Ed25519 signature does not verify'
      : 'ML-DSA-65 signature does not verify';
  return `bad signature: ${what}`;
}

/** describeFile - "name, N bytes, sha256 X" (or what was seen of an upload never copied) for a reason line. */
function describeFile(report: ReportBody): string {
  if (neverCopied(report)) {
    const seen = report.sha256 === null && report.size !== null ? `, ${report.size} bytes seen at pickup` : '';
    return `${quote(report.name.stored)}, never copied (refused at pickup${seen}), no digest`;
  }
  return `${quote(report.name.stored)}, ${report.size} bytes, sha256 ${report.sha256}`;
}

/** oneLine - printable ASCII only (messages are built from escaped parts, this is a last guard). */
function oneLine(text: string): string {
  return text.replace(/[^\x20-\x7e]/g, '?');
}

/**
 * verifyResultJson - the `--json` output: one line of ASCII JSON (no LF),
 * {"ok","code","exitCode","reason"} and, when signatures verified, "report"
 * (the report body without its signature).
 */
export function verifyResultJson(res: VerifyResult): string {
  const out: Record<string, unknown> = { ok: res.ok, code: res.code, exitCode: res.exitCode, reason: res.reason };
  if (res.report) {
    const { signature: _omit, log: _log, ...body } = res.report;
    out.report = body;
  }
  return asciiJson(JSON.stringify(out));
}
