/*
 * NAME
 *   treehead - signed tree heads of a station's transparency log: schema, signed bytes, strict parsing, checks
 *
 * SYNOPSIS
 *   import { TREE_HEAD_FORMAT, treeHeadBytes, parseTreeHead, serializeTreeHead,
 *            validateTreeHead, verifyTreeHead } from '@sluice/report';
 *   treeHeadBytes(head: TreeHeadBody | SignedTreeHead): Uint8Array
 *   validateTreeHead(value: unknown): SignedTreeHead
 *   checkedTreeHead(value: unknown): SignedTreeHead         validated once, frozen
 *   isCheckedTreeHead(value: unknown): boolean
 *   parseTreeHead(text: string): SignedTreeHead
 *   serializeTreeHead(head: SignedTreeHead): string        one line, LF-terminated
 *   verifyTreeHead(head: SignedTreeHead, pub: PublicKey): string | null   null = valid
 *   signTreeHead(body, secret, options?): SignedTreeHead  (in this thread; egress uses SignerPool.signTreeHead)
 *
 * DESCRIPTION
 *   A tree head states that the station's log of reports (an RFC 9162 tree,
 *   merkle.ts) had `size` leaves with root hash `root` at `time`. It is
 *   signed like a report: signed bytes = UTF-8(format) || 0x00 ||
 *   UTF-8(JCS(head without "signature")), Ed25519 and ML-DSA-65 (empty
 *   FIPS 204 context) over exactly those bytes, both must verify. The label
 *   "sluice-treehead/1" differs from every report label, so no tree head
 *   signature can be passed off as a report signature or the reverse.
 *
 *   Members: format, station (1-256 code units), key (32 lowercase hex, the
 *   signing key's id), size (safe non-negative integer), root (64 lowercase
 *   hex), time (ISO 8601 UTC), signature {ed25519, mldsa65} (base64).
 *   The file spelling is that of a report (RFC 8785 JCS, non-ASCII as \u
 *   escapes, one LF); parseTreeHead accepts that spelling and no other.
 *
 *   checkedTreeHead validates a head as validateTreeHead does and returns
 *   its fresh copy frozen (the signature member too), remembered as
 *   checked: a frozen copy can no longer change, so a later validation of
 *   that very object (a report of the same batch referring to it) is
 *   skipped, and only that object's: an equal head from elsewhere is
 *   validated again. Nothing else is remembered; its signatures are not
 *   verified here (verifyTreeHead; egress's signer checks every head it
 *   signs).
 *
 * DIAGNOSTICS
 *   validateTreeHead, checkedTreeHead and parseTreeHead throw ReportFormatError naming the
 *   member. verifyTreeHead returns a one-line problem or null, never throws.
 */
import { hybridSign, hybridVerify, LENGTHS, SIGNATURE_FIELDS, type HybridSignatures } from './_hybrid.js';
import { fromBase64Strict, isLowerHex, signatureProblem, toBase64 } from './_codec.js';
import { JsonError, parseStrictJson } from './_json.js';
import { quote, ReportFormatError } from './errors.js';
import { asciiJson, jcs } from './jcs.js';
import { secretKeyMaterial, type PublicKey, type SecretKey } from './keys.js';
import { LIMITS } from './report.js';

/** The label of tree heads: their "format" member and the start of their signed bytes. */
export const TREE_HEAD_FORMAT = 'sluice-treehead/1';
/** Largest tree head file accepted, in bytes (a head with the longest station escaped is ~7 KB). */
export const MAX_TREE_HEAD_BYTES = 16 * 1024;

/** TreeHeadBody - the signed members of a tree head. */
export interface TreeHeadBody {
  format: typeof TREE_HEAD_FORMAT;
  station: string;
  key: string;
  size: number;
  /** RFC 9162 root hash of the first `size` leaves, 64 lowercase hex. */
  root: string;
  time: string;
}

/** SignedTreeHead - a tree head with its two signatures. */
export interface SignedTreeHead extends TreeHeadBody {
  signature: { ed25519: string; mldsa65: string };
}

const BODY_KEYS = ['format', 'station', 'key', 'size', 'root', 'time'] as const;
const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?Z$/;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** bad - throw ReportFormatError "tree head <member>: <problem>". */
function bad(member: string, problem: string): never {
  throw new ReportFormatError(`tree head ${member}: ${problem}`);
}

/** object - a plain JSON object with exactly `keys`. */
function object(value: unknown, member: string, keys: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad(member, 'must be a JSON object');
  const o = value as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!keys.includes(k)) bad(member, `unknown member ${quote(k, 40)}`);
  for (const k of keys) if (!Object.hasOwn(o, k)) bad(member, `missing member "${k}"`);
  return o;
}

/** validBody - the signed members, checked; a fresh copy in member order. */
function validBody(o: Record<string, unknown>): TreeHeadBody {
  if (o.format !== TREE_HEAD_FORMAT) bad('format', `must be "${TREE_HEAD_FORMAT}"`);
  const st = o.station;
  if (typeof st !== 'string' || st.length < 1 || st.length > LIMITS.station || LONE_SURROGATE.test(st)) {
    bad('station', `must be 1-${LIMITS.station} characters of well-formed Unicode`);
  }
  if (!isLowerHex(o.key, 32)) bad('key', 'must be 32 lowercase hex digits');
  if (typeof o.size !== 'number' || !Number.isSafeInteger(o.size) || o.size < 0 || Object.is(o.size, -0)) {
    bad('size', 'must be a non-negative safe integer');
  }
  if (!isLowerHex(o.root, 64)) bad('root', 'must be 64 lowercase hex digits');
  const t = typeof o.time === 'string' ? ISO_TIME.exec(o.time) : null;
  if (!t || Number.isNaN(Date.parse(o.time as string)) || new Date(Date.parse(o.time as string)).getUTCDate() !== Number(t[3])) {
    bad('time', 'must be an ISO 8601 UTC time YYYY-MM-DDTHH:MM:SS[.fff]Z on a real day');
  }
  return { format: TREE_HEAD_FORMAT, station: st, key: o.key, size: o.size, root: o.root, time: o.time as string };
}

/** validateTreeHead - a whole signed tree head (unknown value); returns a fresh copy. */
export function validateTreeHead(value: unknown): SignedTreeHead {
  const o = object(value, '', [...BODY_KEYS, 'signature']);
  const body = validBody(o);
  const s = object(o.signature, 'signature', ['ed25519', 'mldsa65']);
  const problem = signatureProblem(s, SIGNATURE_FIELDS);
  if (problem) bad(`signature.${problem[0]}`, problem[1]);
  return { ...body, signature: { ed25519: s.ed25519 as string, mldsa65: s.mldsa65 as string } };
}

/** Heads that checkedTreeHead validated and froze: valid for as long as they exist. */
const CHECKED = new WeakSet<object>();

/** checkedTreeHead - validateTreeHead, once per object: a frozen valid copy, remembered (header). */
export function checkedTreeHead(value: unknown): SignedTreeHead {
  if (isCheckedTreeHead(value)) return value;
  const head = validateTreeHead(value);
  Object.freeze(head.signature);
  Object.freeze(head);
  CHECKED.add(head);
  return head;
}

/** isCheckedTreeHead - is this the very object a checkedTreeHead call returned? */
export function isCheckedTreeHead(value: unknown): value is SignedTreeHead {
  return typeof value === 'object' && value !== null && CHECKED.has(value);
}

/** treeHeadBytes - the signed bytes: label || 0x00 || JCS(members without "signature"). */
export function treeHeadBytes(head: TreeHeadBody | SignedTreeHead): Uint8Array {
  const { signature: _omit, ...rest } = head as SignedTreeHead;
  const body = validBody(object(rest, '', BODY_KEYS));
  return Buffer.concat([Buffer.from(TREE_HEAD_FORMAT, 'utf8'), Buffer.of(0), Buffer.from(jcs(body), 'utf8')]);
}

/** assembleTreeHead - attach raw signatures to a body. */
export function assembleTreeHead(body: TreeHeadBody, sigs: HybridSignatures): SignedTreeHead {
  return { ...validBody(object(body, '', BODY_KEYS)), signature: { ed25519: toBase64(sigs.ed25519), mldsa65: toBase64(sigs.mldsa65) } };
}

/** signTreeHead - sign a body in this thread (tests, one-shot tools); checks the key id. */
export function signTreeHead(body: TreeHeadBody, secret: SecretKey, options: { deterministic?: boolean } = {}): SignedTreeHead {
  if (body.key !== secret.keyId) bad('key', `${body.key} is not the id of the signing key (${secret.keyId})`);
  const sigs = hybridSign(treeHeadBytes(body), secretKeyMaterial(secret).keys, options.deterministic === true);
  return assembleTreeHead(body, sigs);
}

/** serializeTreeHead - the one file spelling: ASCII-escaped JCS and a LF. */
export function serializeTreeHead(head: SignedTreeHead): string {
  return `${asciiJson(jcs(isCheckedTreeHead(head) ? head : validateTreeHead(head)))}\n`;
}

/** parseTreeHead - strict: the canonical spelling of a well-formed tree head, or ReportFormatError. */
export function parseTreeHead(text: string): SignedTreeHead {
  if (text.length > MAX_TREE_HEAD_BYTES) throw new ReportFormatError(`tree head is larger than ${MAX_TREE_HEAD_BYTES} bytes`);
  if (!text.endsWith('\n')) throw new ReportFormatError('tree head does not end with a newline');
  for (let i = 0; i < text.length - 1; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) throw new ReportFormatError(`tree head offset ${i}: not printable ASCII`);
  }
  let value: unknown;
  try {
    value = parseStrictJson(text, 4);
  } catch (err) {
    if (err instanceof JsonError) throw new ReportFormatError(`tree head is not valid JSON: ${err.message}`);
    throw err;
  }
  const head = validateTreeHead(value);
  if (serializeTreeHead(head) !== text) throw new ReportFormatError('tree head is not in the canonical spelling');
  return head;
}

/** rootBytes - the 32 bytes of a valid head's root. */
export function rootBytes(head: TreeHeadBody): Buffer {
  return Buffer.from(head.root, 'hex');
}

/** verifyTreeHead - null when `head` is signed by `pub` with both algorithms, else a one-line problem. */
export function verifyTreeHead(head: SignedTreeHead, pub: PublicKey): string | null {
  let bytes: Uint8Array;
  try {
    bytes = treeHeadBytes(validateTreeHead(head));
  } catch (err) {
    if (err instanceof ReportFormatError) return err.message;
    throw err;
  }
  if (head.key !== pub.keyId) return `tree head is signed by key ${head.key}, the public key given is ${pub.keyId}`;
  const ed25519 = fromBase64Strict(head.signature.ed25519, LENGTHS.ed25519Signature) as Uint8Array;
  const mldsa65 = fromBase64Strict(head.signature.mldsa65, LENGTHS.mldsa65Signature) as Uint8Array;
  const check = hybridVerify(bytes, { ed25519, mldsa65 }, pub);
  if (!check.ed25519 && !check.mldsa65) return 'tree head: Ed25519 and ML-DSA-65 signatures do not verify';
  if (!check.ed25519) return 'tree head: Ed25519 signature does not verify';
  if (!check.mldsa65) return 'tree head: ML-DSA-65 signature does not verify';
  return null;
}
