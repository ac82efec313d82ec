/*
 * NAME
 *   report - the Sluice report format: schema, signed bytes, signing, file text, strict parsing
 *
 * SYNOPSIS
 *   import { canonicalBytes, signReport, serializeReport, parseReport, validateReportBody,
 *            neverCopied, pickupRefusal, REPORT_FORMAT, REPORT_FORMATS } from '@sluice/report';
 *   canonicalBytes(body: ReportBody): Uint8Array
 *   signReport(body: ReportBody, secret: SecretKey, options?: { deterministic?: boolean }): SignedReport
 *   serializeReport(report: SignedReport): string
 *   serializeLogged(body: ReportBody, inclusion): string     assembleLogged, then its file text
 *   parseReport(text: string | Uint8Array): SignedReport
 *   validateReportBody(body: unknown): ReportBody
 *   neverCopied(body: ReportBody): boolean
 *   pickupRefusal(checks: ReportCheck[]): { sizeSeen: number | null } | null
 *
 * DESCRIPTION
 *   docs/report-format.md is the normative text; this file implements it.
 *
 *   Signed bytes = UTF-8(format) || 0x00 || UTF-8(JCS(body)), where format
 *   is the report's "format" member (the label), body is the report without
 *   its "signature" member and JCS is RFC 8785. Both signatures (Ed25519 and
 *   ML-DSA-65 with the empty FIPS 204 context) are over exactly these bytes;
 *   a report is valid only when both verify.
 *
 *   Versions: this package writes sluice-report/2 and reads every version
 *   ever issued, each under its own rules, so archived reports keep
 *   verifying. sluice-report/1 differs in two points: its "signature" member
 *   also holds "context", a copy of the label outside the signed bytes
 *   (unauthenticated; it must equal the label and means nothing else), and
 *   it has no way to say that an upload was never copied. In
 *   sluice-report/2 a report about an upload ingress refused at pickup
 *   (nothing was copied, no bytes are vouched for) has "sha256": null and
 *   "size" the size ingress saw, or null when the upload was not a regular
 *   file; only a rejected report may say so. neverCopied recognises such a
 *   report in either version (a sluice-report/1 one by the check transit
 *   wrote for the refusal), so that `sluice verify` never pairs it with a
 *   file.
 *
 *   The report FILE is the JCS text of the whole signed report, with every
 *   code unit from U+007F up written as a \uXXXX escape, followed by one LF.
 *   It is printable ASCII on one line. parseReport accepts that spelling and
 *   no other, so one report has exactly one file text, and a flipped byte can
 *   never leave a file that still verifies.
 *
 *   parseReport refuses, as ReportFormatError naming the field or offset:
 *   non-ASCII or control bytes, duplicate keys, unknown or missing members at
 *   any level, wrong types, sizes that are not safe non-negative integers,
 *   hex or base64 that is not exactly the expected length and spelling, times
 *   that are not ISO 8601 UTC on a real calendar day, a stored name that could
 *   act as a path or hide behind controls or bidi characters, text over the
 *   LIMITS, an accepted verdict with a reason or with a check that did not
 *   pass, a rejected verdict without a reason, and text that is not in the
 *   canonical spelling. It checks no signature; that is verifyReport.
 *
 *   Free text that comes from the upload or the scanners (original name,
 *   reasons, check names, engines) and the station id may hold any
 *   well-formed Unicode within LIMITS: the file spelling escapes it, and
 *   refusing it would let a compromised transit stop egress from signing.
 *
 *   signReport and serializeReport validate with the same rules, so this
 *   package never signs or writes a report it would refuse to read.
 *
 * DIAGNOSTICS
 *   ReportFormatError; TypeError only for calls that are not reports at all.
 */
import { hybridSign, LENGTHS, SIGNATURE_FIELDS, type HybridSignatures } from './_hybrid.js';
import { fromBase64Strict, isLowerHex, signatureProblem, toBase64 } from './_codec.js';
import { JsonError, parseStrictJson } from './_json.js';
import { quote, ReportFormatError } from './errors.js';
import { asciiJson, jcs } from './jcs.js';
import { secretKeyMaterial, type SecretKey } from './keys.js';
import { MERKLE_HASH_BYTES } from './merkle.js';
import { isCheckedTreeHead, validateTreeHead, type SignedTreeHead } from './treehead.js';

/** The format this version writes: the "format" member, and the label that starts the signed bytes. */
export const REPORT_FORMAT = 'sluice-report/2';
/** Every format this version reads, each under its own rules (docs/report-format.md, section 7). */
export const REPORT_FORMATS = ['sluice-report/1', 'sluice-report/2', 'sluice-report/3'] as const;
/**
 * The format of a report vouched for by the station's transparency log: no signature of its own,
 * but its leaf index, a signed tree head and the inclusion proof (member "log"). Its signed body
 * bytes, the same construction as every version's, are the log's leaf.
 */
export const LOGGED_REPORT_FORMAT = 'sluice-report/3';
export type ReportFormat = (typeof REPORT_FORMATS)[number];
/** The format whose "signature" member also carries the unauthenticated "context" (read, never written). */
const FORMAT_WITH_CONTEXT = 'sluice-report/1';
/** SHA-256 of empty input: what a sluice-report/1 report states for an upload refused at pickup. */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
/**
 * The check transit reports when ingress refused an upload at pickup: this name, outcome "fail",
 * and a reason of this prefix followed by ingress's refusal "<code>: <detail>", whose detail starts
 * with "<N> bytes" when ingress saw a regular file's size (packages/transit/src/main.ts writes it,
 * packages/ingress/src/pickup.ts the refusal).
 */
export const PICKUP_CHECK = { name: 'ingress', reasonPrefix: 'refused at pickup: ' } as const;
const PICKUP_SIZE = /^[a-z][a-z-]*: (\d{1,16}) bytes(?:,|$)/;
/**
 * Bounds on text fields, in UTF-16 code units, and on the check list. Every
 * value the stage protocol lets through (packages/protocol BOUNDS, byte
 * limits, and one code unit never needs fewer than one UTF-8 byte) fits, so
 * a compromised transit cannot make egress fail to sign. `reason` leaves room
 * for all 64 check reasons joined.
 */
export const LIMITS = {
  station: 256,
  originalName: 4096,
  reason: 131072,
  checks: 64,
  checkName: 256,
  checkReason: 1024,
  engine: 256,
} as const;
/**
 * Largest report file accepted, in bytes (all ASCII, so also characters).
 * The file spelling needs at most 6 characters per code unit (\uXXXX), and
 * the bounds above keep the largest valid report under 1.5 MB.
 */
export const MAX_REPORT_BYTES = 2 * 1024 * 1024;

export type Verdict = 'accepted' | 'rejected';
export type CheckResult = 'pass' | 'fail' | 'error';

/** ReportCheck - one configured check and what it said. */
export type ReportCheck = {
  /** Check name, 1-256 characters (e.g. "clamav"). */
  name: string;
  result: CheckResult;
  /** Why, in the check's words; may be empty. */
  reason: string;
  /** Engine and rule versions, e.g. "ClamAV 1.4.6/27400"; may be empty. */
  engine: string;
};

/** ReportBody - everything a report states; these are the signed fields. */
export type ReportBody = {
  format: ReportFormat;
  station: string;
  software: string;
  key: string;
  transfer: string;
  name: { original: string; stored: string };
  /**
   * The number of bytes sha256 is the digest of. In a report of an upload never copied (sha256
   * null): the size ingress saw at pickup, or null when the upload was not a regular file.
   */
  size: number | null;
  /** SHA-256 of the bytes egress copied, 64 lowercase hex digits; null: never copied (sluice-report/2, rejected only). */
  sha256: string | null;
  verdict: Verdict;
  reason: string;
  checks: ReportCheck[];
  times: { received: string; checked: string; reported: string };
  /**
   * The named uploader the file came from (sluice-report/2, optional): present only for a station
   * with named uploaders. Ingress's word, taken from the inbox the file appeared in.
   */
  uploader?: string;
};

/** ReportSignature - the unsigned "signature" member. */
export type ReportSignature = {
  /** sluice-report/1 only: a copy of the label, outside the signed bytes; must equal the format, means nothing. */
  context?: typeof FORMAT_WITH_CONTEXT;
  /** base64 of the 64-byte Ed25519 signature. */
  ed25519: string;
  /** base64 of the 3309-byte ML-DSA-65 signature. */
  mldsa65: string;
};

/** ReportLog - the unsigned "log" member of a sluice-report/3 report. */
export type ReportLog = {
  /** The leaf's index in the log (0-based), less than head.size. */
  index: number;
  /** RFC 9162 inclusion proof of the leaf in the tree of head.size leaves, 64 lowercase hex each. */
  proof: string[];
  head: SignedTreeHead;
};

/**
 * SignedReport - a report body with what vouches for it beside the body fields: its own
 * "signature" (sluice-report/1 and /2), or its place in the signed log, "log" (sluice-report/3).
 */
export type SignedReport = ReportBody & ({ signature: ReportSignature; log?: never } | { log: ReportLog; signature?: never });

const BODY_KEYS = ['format', 'station', 'software', 'key', 'transfer', 'name', 'size', 'sha256', 'verdict', 'reason', 'checks', 'times'] as const;
/** The optional body member: a named uploader (sluice-report/2 only). */
const UPLOADER_KEY = 'uploader';
/** An uploader name: a system user name, as the stage protocol carries it. */
const UPLOADER_NAME = /^[a-z_][a-z0-9_-]{0,31}$/;
const TOKEN = /^[\x21-\x7e]+$/;
// C0, DEL, C1 controls; bidi marks, embeddings, overrides and isolates (not allowed in stored names).
const CONTROL_OR_BIDI = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
// ISO 8601 UTC as the stage protocol writes it: seconds, optional 1-9 fraction digits, 'Z'.
const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?Z$/;
const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** bad - throw ReportFormatError "<field>: <problem>". */
function bad(path: string, problem: string): never {
  throw new ReportFormatError(`${path}: ${problem}`);
}

/** members - a plain JSON object with exactly `keys` (and any of `optional`); refuses unknown and missing members. */
function members(value: unknown, path: string, keys: readonly string[], optional: readonly string[] = []): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad(path, 'must be a JSON object');
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) bad(path, 'must be a plain object');
  const obj = value as Record<string, unknown>;
  for (const k of Object.keys(obj)) if (!keys.includes(k) && !optional.includes(k)) bad(path, `unknown member ${quote(k, 40)}`);
  for (const k of keys) if (!Object.hasOwn(obj, k)) bad(path, `missing member "${k}"`);
  return obj;
}

/** wellFormed - a string of at most `max` code units that is well-formed Unicode. */
function wellFormed(value: unknown, path: string, max: number): string {
  if (typeof value !== 'string') bad(path, 'must be a string');
  if (value.length > max) bad(path, `longer than ${max} characters`);
  if (LONE_SURROGATE.test(value)) bad(path, 'is not well-formed Unicode (lone surrogate)');
  return value;
}

/** nonEmpty - a well-formed string of 1..max code units. */
function nonEmpty(value: unknown, path: string, max: number): string {
  const s = wellFormed(value, path, max);
  if (s.length === 0) bad(path, 'must not be empty');
  return s;
}

/** token - 1..max printable ASCII characters, no space. */
function token(value: unknown, path: string, max: number): string {
  if (typeof value !== 'string' || value.length < 1 || value.length > max || !TOKEN.test(value)) {
    bad(path, `must be 1-${max} printable ASCII characters without space`);
  }
  return value;
}

/** storedName - a single safe path component: 1-255 UTF-8 bytes, no '/', controls, bidi, '.' or '..'. */
function storedName(value: unknown, path: string): string {
  const s = wellFormed(value, path, 255);
  const bytes = Buffer.byteLength(s, 'utf8');
  if (bytes < 1 || bytes > 255) bad(path, 'must be 1-255 bytes of UTF-8');
  if (s.includes('/')) bad(path, "contains '/'");
  if (s === '.' || s === '..') bad(path, "is '.' or '..'");
  if (CONTROL_OR_BIDI.test(s)) bad(path, 'contains a control or bidi character');
  return s;
}

/** isoTime - YYYY-MM-DDTHH:MM:SS[.fraction]Z on a real calendar day (no leap second). */
function isoTime(value: unknown, path: string): string {
  const m = typeof value === 'string' ? ISO_TIME.exec(value) : null;
  if (!m) bad(path, 'must be an ISO 8601 UTC time YYYY-MM-DDTHH:MM:SS[.fff]Z');
  const [y, mo, d, h, mi, se] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  const days = mo === 2 && leap ? 29 : (DAYS[mo - 1] ?? 0);
  if (mo < 1 || mo > 12 || d < 1 || d > days || h > 23 || mi > 59 || se > 59) bad(path, 'is not a valid date and time');
  return m[0];
}

/** oneOf - one of a fixed set of strings. */
function oneOf<T extends string>(value: unknown, path: string, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    bad(path, `must be one of ${allowed.map((a) => `"${a}"`).join(', ')}`);
  }
  return value as T;
}

/** validateCheck - one entry of "checks". */
function validateCheck(value: unknown, path: string): ReportCheck {
  const o = members(value, path, ['name', 'result', 'reason', 'engine']);
  return {
    name: nonEmpty(o.name, `${path}.name`, LIMITS.checkName),
    result: oneOf(o.result, `${path}.result`, ['pass', 'fail', 'error'] as const),
    reason: wellFormed(o.reason, `${path}.reason`, LIMITS.checkReason),
    engine: wellFormed(o.engine, `${path}.engine`, LIMITS.engine),
  };
}

/** validateReportBody - check a body against the format; returns a fresh copy in field order. */
export function validateReportBody(value: unknown): ReportBody {
  const o = members(value, 'report', BODY_KEYS, [UPLOADER_KEY]);
  return bodyOf(o);
}

/** bodyOf - the body fields of an object whose member set was already checked. */
function bodyOf(o: Record<string, unknown>): ReportBody {
  if (!(REPORT_FORMATS as readonly unknown[]).includes(o.format)) bad('format', `must be one of ${REPORT_FORMATS.map((f) => `"${f}"`).join(', ')}`);
  const format = o.format as ReportFormat;
  const station = nonEmpty(o.station, 'station', LIMITS.station);
  if (typeof o.software !== 'string' || !/^sluice [\x21-\x7e]{1,64}$/.test(o.software)) bad('software', 'must be "sluice <version>"');
  const software = o.software;
  if (!isLowerHex(o.key, 32)) bad('key', 'must be 32 lowercase hex digits');
  const transfer = token(o.transfer, 'transfer', 128);
  const n = members(o.name, 'name', ['original', 'stored']);
  const name = { original: wellFormed(n.original, 'name.original', LIMITS.originalName), stored: storedName(n.stored, 'name.stored') };
  // sluice-report/2 states an upload that was never copied with a null digest (and a null size when
  // ingress saw no regular file); sluice-report/1 has no such report.
  const nullable = format !== FORMAT_WITH_CONTEXT;
  if (!(nullable && o.sha256 === null) && !isLowerHex(o.sha256, 64)) bad('sha256', nullable ? 'must be 64 lowercase hex digits, or null' : 'must be 64 lowercase hex digits');
  if (!(nullable && o.size === null) && (typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0 || Object.is(o.size, -0))) {
    bad('size', `must be a non-negative safe integer (at most 2^53-1)${nullable ? ', or null' : ''}`);
  }
  if (o.size === null && o.sha256 !== null) bad('size', 'may be null only when sha256 is null (an upload never copied)');
  const verdict = oneOf(o.verdict, 'verdict', ['accepted', 'rejected'] as const);
  const reason = wellFormed(o.reason, 'reason', LIMITS.reason);
  if (!Array.isArray(o.checks)) bad('checks', 'must be an array');
  if (o.checks.length > LIMITS.checks) bad('checks', `more than ${LIMITS.checks} entries`);
  const checks = o.checks.map((c: unknown, i: number) => validateCheck(c, `checks[${i}]`));
  const t = members(o.times, 'times', ['received', 'checked', 'reported']);
  const times = { received: isoTime(t.received, 'times.received'), checked: isoTime(t.checked, 'times.checked'), reported: isoTime(t.reported, 'times.reported') };
  if (verdict === 'accepted') {
    if (o.sha256 === null) bad('sha256', 'is null (never copied) but the verdict is "accepted"');
    if (reason !== '') bad('reason', 'must be empty when the verdict is "accepted"');
    const failed = checks.findIndex((c) => c.result !== 'pass');
    if (failed >= 0) bad(`checks[${failed}].result`, 'is not "pass" but the verdict is "accepted"');
  } else if (reason === '') {
    bad('reason', 'must say why when the verdict is "rejected"');
  }
  const body: ReportBody = { format, station, software, key: o.key, transfer, name, size: o.size as number | null, sha256: o.sha256 as string | null, verdict, reason, checks, times };
  if (Object.hasOwn(o, UPLOADER_KEY)) {
    // Added to sluice-report/2 while it was unreleased: an optional member, so reports without it
    // keep their bytes; sluice-report/1 never had it.
    if (format === FORMAT_WITH_CONTEXT) bad(UPLOADER_KEY, `is not a member of "${FORMAT_WITH_CONTEXT}"`);
    if (typeof o.uploader !== 'string' || !UPLOADER_NAME.test(o.uploader)) bad(UPLOADER_KEY, 'must be an uploader name: 1-32 of [a-z0-9_-], starting with [a-z_]');
    body.uploader = o.uploader;
  }
  return body;
}

/** validateSigned - a whole signed report; returns a fresh copy. */
function validateSigned(value: unknown): SignedReport {
  const logged = isObject(value) && value.format === LOGGED_REPORT_FORMAT;
  const o = members(value, 'report', [...BODY_KEYS, logged ? 'log' : 'signature'], [UPLOADER_KEY]);
  const body = bodyOf(o);
  if (logged) return { ...body, log: validateLog(o.log, body) };
  const withContext = body.format === FORMAT_WITH_CONTEXT;
  const s = members(o.signature, 'signature', withContext ? ['context', 'ed25519', 'mldsa65'] : ['ed25519', 'mldsa65']);
  if (withContext && s.context !== FORMAT_WITH_CONTEXT) bad('signature.context', `must be "${FORMAT_WITH_CONTEXT}"`);
  const problem = signatureProblem(s, SIGNATURE_FIELDS);
  if (problem) bad(`signature.${problem[0]}`, problem[1]);
  const sigs = { ed25519: s.ed25519 as string, mldsa65: s.mldsa65 as string };
  return { ...body, signature: withContext ? { context: FORMAT_WITH_CONTEXT, ...sigs } : sigs };
}

/** isObject - a non-null, non-array object. */
function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The longest inclusion proof: one hash per level of a tree of 2^53 leaves. */
const MAX_PROOF_HASHES = 64;

/** validateLog - the "log" member of a sluice-report/3 report of `body`. */
function validateLog(value: unknown, body: ReportBody): ReportLog {
  const l = members(value, 'log', ['index', 'proof', 'head']);
  let head: SignedTreeHead;
  try {
    // A head checkedTreeHead froze is valid as it stands (every report of a batch shares it).
    head = isCheckedTreeHead(l.head) ? l.head : validateTreeHead(l.head);
  } catch (err) {
    if (err instanceof ReportFormatError) bad('log.head', err.message);
    throw err;
  }
  if (typeof l.index !== 'number' || !Number.isSafeInteger(l.index) || l.index < 0 || Object.is(l.index, -0)) bad('log.index', 'must be a non-negative safe integer');
  if (l.index >= head.size) bad('log.index', `must be less than log.head.size (${head.size})`);
  if (!Array.isArray(l.proof) || l.proof.length > MAX_PROOF_HASHES) bad('log.proof', `must be an array of at most ${MAX_PROOF_HASHES} hashes`);
  const proof = l.proof.map((h: unknown, i: number) => {
    if (!isLowerHex(h, 2 * MERKLE_HASH_BYTES)) bad(`log.proof[${i}]`, `must be ${2 * MERKLE_HASH_BYTES} lowercase hex digits`);
    return h;
  });
  if (head.key !== body.key) bad('log.head.key', `${head.key} is not the report's key ${body.key}`);
  if (head.station !== body.station) bad('log.head.station', "is not the report's station");
  return { index: l.index, proof, head };
}

/** assembleLogged - a sluice-report/3 report: a valid body and its place in the log. */
export function assembleLogged(report: ReportBody, inclusion: { index: number; proof: readonly Uint8Array[]; head: SignedTreeHead }): SignedReport {
  const body = validateReportBody(withoutSignature(report));
  if (body.format !== LOGGED_REPORT_FORMAT) bad('format', `a report in the log is "${LOGGED_REPORT_FORMAT}"`);
  const log = validateLog({ index: inclusion.index, proof: inclusion.proof.map((h) => Buffer.from(h).toString('hex')), head: inclusion.head }, body);
  return { ...body, log };
}

/**
 * serializeLogged - the file text of assembleLogged(report, inclusion): the bytes serializeReport
 * writes for it, with the report validated once (assembleLogged) rather than again before writing.
 */
export function serializeLogged(report: ReportBody, inclusion: { index: number; proof: readonly Uint8Array[]; head: SignedTreeHead }): string {
  return fileText(assembleLogged(report, inclusion));
}

/** withoutSignature - the body members of a body or signed report (a shallow copy). */
function withoutSignature(report: ReportBody | SignedReport): unknown {
  if (typeof report !== 'object' || report === null) return report;
  const { signature: _ignored, log: _log, ...body } = report as SignedReport;
  return body;
}

/** bodyBytes - label || 0x00 || JCS(body) for a body that is already valid; the label is its format. */
function bodyBytes(body: ReportBody): Uint8Array {
  const label = Buffer.from(body.format, 'utf8');
  const json = Buffer.from(jcs(body), 'utf8');
  const out = new Uint8Array(label.length + 1 + json.length);
  out.set(label, 0);
  out[label.length] = 0x00;
  out.set(json, label.length + 1);
  return out;
}

/** canonicalBytes - the signed bytes of a report; a "signature" member, if present, is left out. */
export function canonicalBytes(report: ReportBody | SignedReport): Uint8Array {
  return bodyBytes(validateReportBody(withoutSignature(report)));
}

/** assembleSigned - attach raw signatures to a valid body (of the format this version writes). */
export function assembleSigned(body: ReportBody, sigs: HybridSignatures): SignedReport {
  return { ...body, signature: { ed25519: toBase64(sigs.ed25519), mldsa65: toBase64(sigs.mldsa65) } };
}

/** signatureBytes - the raw signatures of a report that passed parseReport. */
export function signatureBytes(report: SignedReport): HybridSignatures {
  if (!report.signature) throw new ReportFormatError(`signature: a "${LOGGED_REPORT_FORMAT}" report has none (see "log")`);
  const ed25519 = fromBase64Strict(report.signature.ed25519, LENGTHS.ed25519Signature);
  const mldsa65 = fromBase64Strict(report.signature.mldsa65, LENGTHS.mldsa65Signature);
  if (!(ed25519 instanceof Uint8Array) || !(mldsa65 instanceof Uint8Array)) throw new ReportFormatError('signature: not valid base64');
  return { ed25519, mldsa65 };
}

/** prepareBody - validate a body for signing by `secret`; returns it and its signed bytes. */
export function prepareBody(report: ReportBody, secret: SecretKey): { body: ReportBody; bytes: Uint8Array } {
  const body = validateReportBody(withoutSignature(report));
  if (body.format !== REPORT_FORMAT) bad('format', `this version signs only "${REPORT_FORMAT}"`);
  if (body.key !== secret.keyId) bad('key', `${body.key} is not the id of the signing key (${secret.keyId})`);
  return { body, bytes: bodyBytes(body) };
}

/**
 * signReport - sign a body in this thread (about 5 ms). Production egress signs
 * through SignerPool; `deterministic` turns off ML-DSA hedging, for test vectors only.
 */
export function signReport(body: ReportBody, secret: SecretKey, options: { deterministic?: boolean } = {}): SignedReport {
  const prepared = prepareBody(body, secret);
  const sigs = hybridSign(prepared.bytes, secretKeyMaterial(secret).keys, options.deterministic === true);
  return assembleSigned(prepared.body, sigs);
}

/**
 * pickupRefusal - the refusal of an upload at pickup, when the checks hold the one transit writes
 * for it (PICKUP_CHECK, outcome "fail"): with the size ingress saw, or null when it stated none.
 * Null when no check says so. The size is ingress's word; nothing was copied to measure.
 */
export function pickupRefusal(checks: readonly ReportCheck[]): { sizeSeen: number | null } | null {
  const check = checks.find((c) => c.name === PICKUP_CHECK.name && c.result === 'fail' && c.reason.startsWith(PICKUP_CHECK.reasonPrefix));
  if (!check) return null;
  const m = PICKUP_SIZE.exec(check.reason.slice(PICKUP_CHECK.reasonPrefix.length));
  const size = m ? Number(m[1]) : NaN;
  return { sizeSeen: Number.isSafeInteger(size) ? size : null };
}

/**
 * neverCopied - does this (valid) report speak of an upload that was never copied, so that it
 * vouches for no bytes at all? sluice-report/2 says so with a null sha256. A sluice-report/1
 * report had no way to: it stated size 0 and the digest of empty input beside the pickup-refusal
 * check, which an empty file would match.
 */
export function neverCopied(body: ReportBody): boolean {
  if (body.sha256 === null) return true;
  return body.format === FORMAT_WITH_CONTEXT && body.verdict === 'rejected' && body.size === 0 && body.sha256 === EMPTY_SHA256 && pickupRefusal(body.checks) !== null;
}

/** fileText - the one spelling of a report file: ASCII-escaped JCS and a LF. */
function fileText(report: SignedReport): string {
  return `${asciiJson(jcs(report))}\n`;
}

/** serializeReport - the exact bytes (as an ASCII string) of the report file. */
export function serializeReport(report: SignedReport): string {
  return fileText(validateSigned(report));
}

/** parseReport - strict: the canonical file text of a well-formed report, or ReportFormatError. */
export function parseReport(input: string | Uint8Array): SignedReport {
  const text = typeof input === 'string' ? input : asciiText(input);
  if (text.length === 0) throw new ReportFormatError('report is empty');
  if (text.length > MAX_REPORT_BYTES) throw new ReportFormatError(`report is larger than ${MAX_REPORT_BYTES} bytes`);
  for (let i = 0; i < text.length - 1; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) throw new ReportFormatError(`offset ${i}: not printable ASCII (a report file is one line of ASCII)`);
  }
  if (text.charCodeAt(text.length - 1) !== 0x0a) throw new ReportFormatError('report does not end with a newline');
  let value: unknown;
  try {
    value = parseStrictJson(text, 8);
  } catch (err) {
    if (err instanceof JsonError) throw new ReportFormatError(`not valid JSON: ${err.message}`);
    throw err;
  }
  const report = validateSigned(value);
  const canonical = fileText(report);
  if (canonical !== text) {
    let i = 0;
    while (i < text.length && text[i] === canonical[i]) i++;
    throw new ReportFormatError(`offset ${i}: not the canonical spelling (RFC 8785 JCS, non-ASCII as \\u escapes, one final LF)`);
  }
  return report;
}

/** asciiText - bytes to a string, refusing non-ASCII before any decoding. */
function asciiText(bytes: Uint8Array): string {
  if (bytes.length > MAX_REPORT_BYTES) throw new ReportFormatError(`report is larger than ${MAX_REPORT_BYTES} bytes`);
  const i = bytes.findIndex((b) => b > 0x7e);
  if (i >= 0) throw new ReportFormatError(`offset ${i}: not printable ASCII (a report file is one line of ASCII)`);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1');
}
