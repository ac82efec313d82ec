/*
 * NAME
 *   @sluice/protocol - the records between stages, and their strict codecs
 *
 * SYNOPSIS
 *   import {
 *     decodeIngressTransfer, encodeIngressTransfer,   // ingress -> transit
 *     decodeTransitTransfer, encodeTransitTransfer,   // transit -> egress
 *     decodeAck, encodeAck,                           // downstream -> upstream
 *     ProtocolError, isProtocolError, PROTOCOL_REASONS,
 *     checkLimits, largestFixedRecord, BOUNDS, PROTOCOL_VERSION, PROTO_PATH, PROTO_PACKAGE,
 *     VERDICTS, OUTCOMES, ACK_STATUSES,
 *     truncateUtf8, isTimestamp, ID_PATTERN,
 *     type IngressTransfer, type TransitTransfer, type CheckResult, type Ack,
 *     type Verdict, type Outcome, type AckStatus, type Limits, type ProtocolReason,
 *   } from '@sluice/protocol';
 *
 *   const limits = wireLimits(cfg);          // @sluice/core: the one source of Limits
 *   const t = decodeIngressTransfer(record, limits);
 *   const bytes = encodeAck({ id: t.id, sha256: t.sha256, status: 'delivered', reason: '' }, limits);
 *
 * DESCRIPTION
 *   One schema per hop (sluice.proto, package sluice.v1), loaded by
 *   reflection at import time. A decoder takes one SEQPACKET record and
 *   returns a plain, fully validated object, or throws a ProtocolError with
 *   a stable `reason`. An encoder runs the same checks on its argument and
 *   never produces a record its decoder would refuse.
 *
 *   Every encoder and decoder takes the deployment's Limits, all three
 *   members, as a required argument: there is no default by which an
 *   encoder could judge a record while the peer's decoder judges it by the
 *   configured policy (a file the one allows and the other refuses would
 *   be resent for ever). The stages build it from their configuration in
 *   one place, core's wireLimits(cfg). largestFixedRecord() is how large a
 *   record of a bounded message (IngressTransfer, Ack) can get, for the
 *   configuration check that maxRecordBytes holds it.
 *
 *   A decoder checks, in this order: the record's length (empty,
 *   record-too-large) before any parsing; then the wire format of every
 *   field (wire.ts); then version == 1; then unknown fields; then each
 *   field's value, in field-number order. The first failure is thrown.
 *
 *   The plain objects carry no `version` (it is always PROTOCOL_VERSION) and
 *   use string unions for enums. `sha256` is a fresh Uint8Array that shares
 *   no memory with the record buffer.
 *
 * SECURITY
 *   Records come from a stage that may be compromised. Nothing here trusts
 *   a length, a count or a string before checking it; nothing allocates
 *   more than a small multiple of the record size (itself capped); no field
 *   of one hop can be smuggled into another hop's message (an ingress record
 *   carrying a verdict is refused as an unknown field).
 *
 * DIAGNOSTICS
 *   ProtocolError (reason, field, message): bad input, log and go on.
 *   TypeError / RangeError: a caller's bug (wrong JS types, bad limits).
 */
import { ProtocolError } from './errors.js';
import { enums, types, wireSchemas, type MessageName } from './schema.js';
import { walk, type RepeatedBounds } from './wire.js';
import {
  checkId,
  checkSha256,
  checkSize,
  checkText,
  checkTimestamp,
  expect,
} from './validate.js';

export { ProtocolError, PROTOCOL_REASONS, type ProtocolReason } from './errors.js';
export { PROTO_PATH, PROTO_PACKAGE } from './schema.js';
export { ID_PATTERN, isTimestamp, truncateUtf8 } from './validate.js';

/** The version senders write; every record carries one, so no valid record is empty. */
export const PROTOCOL_VERSION = 2;
/** Versions receivers accept: 1 (no uploader) and 2 (adds `uploader`). Deploy receivers first. */
export const ACCEPTED_VERSIONS: readonly number[] = [1, 2];
/** UPLOADER_PATTERN - a named uploader: a system user name (docs/protocol.md). */
export const UPLOADER_PATTERN = /^[a-z_][a-z0-9_-]{0,31}$/;

/** Transit's decision on a file. */
export type Verdict = 'accepted' | 'rejected';
/** The result of one check; 'error' means the check could not complete (fail closed). */
export type Outcome = 'pass' | 'fail' | 'error';
/**
 * What the downstream stage did with a transfer:
 * 'delivered' - durable downstream (output or rejection report fsynced): forget it;
 * 'retry' - temporary trouble: hold it and resend later;
 * 'refused' - the record itself was refused (protocol violation or policy).
 */
export type AckStatus = 'delivered' | 'retry' | 'refused';

export const VERDICTS: readonly Verdict[] = ['accepted', 'rejected'];
export const OUTCOMES: readonly Outcome[] = ['pass', 'fail', 'error'];
export const ACK_STATUSES: readonly AckStatus[] = ['delivered', 'retry', 'refused'];

/** TransferFields - fields 1-6, common to both transfer messages (1-4 pinned). */
export interface TransferFields {
  /** 1-64 chars of [A-Za-z0-9_-]. */
  id: string;
  /** The uploaded name: data, never a path. 1..maxNameBytes UTF-8 bytes. */
  name: string;
  /** Bytes; a safe integer, 0..maxFileSize. */
  size: number;
  /** SHA-256 of the file, 32 bytes. */
  sha256: Uint8Array;
  /** ISO 8601 UTC, when ingress picked the file up. */
  receivedAt: string;
  /** The named uploader the file came from (UPLOADER_PATTERN), or '' for the anonymous drop. Version 2. */
  uploader?: string;
}

/** IngressTransfer - ingress -> transit, with one read-only fd. */
export interface IngressTransfer extends TransferFields {
  /** Non-empty: ingress refused the upload itself (the fd is an empty file); transit must reject. 0-1024 bytes. */
  refusal: string;
}

/** CheckResult - one check transit ran on its own sealed copy. */
export interface CheckResult {
  /** e.g. 'clamav'; 1-256 bytes. */
  name: string;
  outcome: Outcome;
  /** Human text, 0-1024 bytes ('' when there is nothing to say). */
  reason: string;
  /** e.g. 'clamav 1.4.6/db 27000'; 0-256 bytes. */
  engine: string;
}

/** TransitTransfer - transit -> egress, with one read-only fd of transit's own copy. */
export interface TransitTransfer extends TransferFields {
  verdict: Verdict;
  /** At most 64. */
  checks: CheckResult[];
  /** ISO 8601 UTC, when transit decided. */
  checkedAt: string;
}

/** Ack - downstream -> upstream, no fd. */
export interface Ack {
  id: string;
  sha256: Uint8Array;
  status: AckStatus;
  /** Human text, 0-1024 bytes. */
  reason: string;
}

/** Limits - the deployment's policy; every encoder and decoder requires it (core's wireLimits(cfg)). */
export interface Limits {
  /** Largest record in bytes, checked before parsing. */
  maxRecordBytes: number;
  /** Largest file size a transfer may announce (the stage's size policy). */
  maxFileSize: number;
  /** Largest uploaded name in UTF-8 bytes. */
  maxNameBytes: number;
}

/** BOUNDS - fixed by the protocol (not policy): the same for every deployment. */
export const BOUNDS = Object.freeze({
  idMaxChars: 64,
  sha256Bytes: 32,
  maxChecks: 64,
  checkNameMaxBytes: 256,
  checkReasonMaxBytes: 1024,
  engineMaxBytes: 256,
  refusalMaxBytes: 1024,
  ackReasonMaxBytes: 1024,
});

const REPEATED_BOUNDS: RepeatedBounds = Object.freeze({ 'TransitTransfer.checks': BOUNDS.maxChecks });

/** wireEnum - name<->number tables for one enum, checked against the .proto at load. */
function wireEnum<T extends string>(values: Record<string, number>, names: Record<T, string>) {
  const toWire = new Map<T, number>();
  const fromWire = new Map<number, T>();
  for (const [ts, proto] of Object.entries(names) as [T, string][]) {
    const n = values[proto];
    if (n === undefined || n === 0) throw new Error(`sluice.proto: enum value ${proto} missing or 0`);
    toWire.set(ts, n);
    fromWire.set(n, ts);
  }
  return { toWire, fromWire };
}

const VERDICT = wireEnum<Verdict>(enums.Verdict, { accepted: 'ACCEPTED', rejected: 'REJECTED' });
const OUTCOME = wireEnum<Outcome>(enums.Outcome, { pass: 'PASS', fail: 'FAIL', error: 'ERROR' });
const ACK_STATUS = wireEnum<AckStatus>(enums.AckStatus, { delivered: 'DELIVERED', retry: 'RETRY', refused: 'REFUSED' });

/** checkLimits - all three members present, each a safe integer in range; anything else is a caller's bug (TypeError/RangeError). */
export function checkLimits(limits: Limits): Limits {
  if (typeof limits !== 'object' || limits === null) throw new TypeError('protocol limits: required (core\'s wireLimits(cfg))');
  for (const key of ['maxRecordBytes', 'maxFileSize', 'maxNameBytes'] as const) {
    const v = limits[key];
    if (!Number.isSafeInteger(v) || v < (key === 'maxFileSize' ? 0 : 1)) {
      throw new RangeError(`protocol limits: ${key} must be a safe integer${key === 'maxFileSize' ? ' >= 0' : ' >= 1'}, got ${String(v)}`);
    }
  }
  return limits;
}

/**
 * largestFixedRecord - the largest IngressTransfer or Ack that can be encoded
 * with names of up to maxNameBytes: every string at its bound, the largest
 * size, the longest timestamp. A maxRecordBytes below this makes some honest
 * record unsendable. (A TransitTransfer also grows with the number of checks.)
 */
export function largestFixedRecord(maxNameBytes: number): number {
  if (!Number.isSafeInteger(maxNameBytes) || maxNameBytes < 1) throw new RangeError('largestFixedRecord: maxNameBytes must be a safe integer >= 1');
  const id = 'i'.repeat(BOUNDS.idMaxChars);
  const sha256 = new Uint8Array(BOUNDS.sha256Bytes).fill(0xff);
  const ingress = types.IngressTransfer.encode({
    id,
    name: 'n'.repeat(maxNameBytes),
    size: Number.MAX_SAFE_INTEGER,
    sha256,
    version: PROTOCOL_VERSION,
    receivedAt: '9999-12-31T23:59:59.999999999Z',
    refusal: 'r'.repeat(BOUNDS.refusalMaxBytes),
  }).finish().length;
  const ack = types.Ack.encode({
    version: PROTOCOL_VERSION,
    id,
    sha256,
    status: Math.max(...ACK_STATUS.toWire.values()),
    reason: 'r'.repeat(BOUNDS.ackReasonMaxBytes),
  }).finish().length;
  return Math.max(ingress, ack);
}

// ---------------------------------------------------------------------------
// Decoding

/** The shapes protobufjs gives back (fields absent on the wire hold proto3 defaults). */
interface LongLike {
  low: number;
  high: number;
}
interface WireIngress {
  id: string;
  name: string;
  size: number | LongLike;
  sha256: unknown;
  receivedAt: string;
  uploader: string;
}
interface WireCheck {
  name: string;
  outcome: number;
  reason: string;
  engine: string;
}
interface WireIngressOnly extends WireIngress {
  refusal: string;
}
interface WireTransit extends WireIngress {
  verdict: number;
  checks: WireCheck[];
  checkedAt: string;
}
interface WireAck {
  id: string;
  sha256: unknown;
  status: number;
  reason: string;
}

/** parseRecord - size gates, strict wire walk, version, unknown fields, then protobufjs. */
function parseRecord(buf: Uint8Array, message: MessageName, limits: Limits): { version: number; decoded: unknown } {
  if (!(buf instanceof Uint8Array)) throw new TypeError(`${message}: record must be a Uint8Array`);
  if (buf.length > limits.maxRecordBytes) {
    throw new ProtocolError('record-too-large', `${message}: record of ${buf.length} bytes, at most ${limits.maxRecordBytes}`);
  }
  if (buf.length === 0) throw new ProtocolError('empty-record', `${message}: empty record`);
  const { version, unknown } = walk(buf, wireSchemas[message], REPEATED_BOUNDS);
  if (version === undefined || !ACCEPTED_VERSIONS.includes(version)) {
    throw new ProtocolError(
      'bad-version',
      `${message}.version: ${version === undefined || version === 0 ? 'absent (0)' : version}, expected ${ACCEPTED_VERSIONS.join(' or ')}`,
      'version',
    );
  }
  if (unknown !== undefined) {
    throw new ProtocolError('unknown-field', `${message}: unknown ${unknown}`, unknown);
  }
  try {
    return { version, decoded: types[message].decode(buf) };
  } catch (err) {
    // The walk accepted the record, so this should not happen; refuse rather than crash.
    throw new ProtocolError('bad-wire-format', `${message}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** toSize - a uint64 from protobufjs (Long or number) as a safe integer, or size-over-policy. */
function toSize(v: number | LongLike, where: string, limits: Limits): number {
  let n: number;
  if (typeof v === 'number') {
    n = v;
  } else {
    const high = v.high >>> 0;
    // 2^53 - 1 = 0x1fffff * 2^32 + 0xffffffff: anything with a higher high word is unsafe.
    if (high > 0x1f_ffff) {
      throw new ProtocolError('size-over-policy', `${where}: over 2^53-1 bytes, policy allows at most ${limits.maxFileSize}`, 'size');
    }
    n = high * 2 ** 32 + (v.low >>> 0);
  }
  checkSize(n, where, limits.maxFileSize);
  return n;
}

/**
 * wireBytes - a bytes field from protobufjs. An absent field holds the
 * prototype default, an empty array rather than a Uint8Array.
 */
function wireBytes(v: unknown, where: string): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (Array.isArray(v) && v.length === 0) return new Uint8Array(0);
  throw new ProtocolError('bad-wire-format', `${where}: unexpected decoded value`);
}

/** toEnum - a wire enum number as its string, refusing 0 and values the schema lacks. */
function toEnum<T extends string>(n: number, table: { fromWire: Map<number, T> }, where: string, path: string): T {
  if (n === 0) throw new ProtocolError('unspecified-enum', `${where}: unspecified (0)`, path);
  const v = table.fromWire.get(n);
  if (v === undefined) throw new ProtocolError('unknown-enum', `${where}: unknown value ${n}`, path);
  return v;
}

/**
 * checkUploader - the optional uploader name: '' (anonymous) or UPLOADER_PATTERN. It names a
 * directory and a report member, so it is held to the system user name rule, never cut or escaped.
 */
function checkUploader(value: unknown, where: string): void {
  expect(value, 'string', where);
  const s = value as string;
  if (s !== '' && !UPLOADER_PATTERN.test(s)) {
    throw new ProtocolError('bad-uploader', `${where}: not an uploader name ([a-z_][a-z0-9_-], at most 32 characters; got ${s.length} chars)`, 'uploader');
  }
}

/** uploaderOf - the decoded uploader: refused in a version-1 record, which cannot carry it. */
function uploaderOf(m: WireIngress, version: number, message: string): string {
  const u = typeof m.uploader === 'string' ? m.uploader : '';
  if (version < 2 && u !== '') throw new ProtocolError('unknown-field', `${message}: unknown field 11 (uploader needs version 2)`, 'field 11');
  checkUploader(u, `${message}.uploader`);
  return u;
}

/** ingressFields - fields 1-6, shared by both transfer messages, validated in field order. */
function ingressFields(m: WireIngress, message: string, limits: Limits): TransferFields {
  checkId(m.id, `${message}.id`);
  checkText(m.name, `${message}.name`, limits.maxNameBytes, true);
  const size = toSize(m.size, `${message}.size`, limits);
  const sha256 = wireBytes(m.sha256, `${message}.sha256`);
  checkSha256(sha256, `${message}.sha256`);
  checkTimestamp(m.receivedAt, `${message}.receivedAt`);
  return { id: m.id, name: m.name, size, sha256: Uint8Array.from(sha256), receivedAt: m.receivedAt };
}

/** decodeIngressTransfer - one ingress->transit record, strictly. Throws ProtocolError. */
export function decodeIngressTransfer(buf: Uint8Array, limits: Limits): IngressTransfer {
  const l = checkLimits(limits);
  const { version, decoded } = parseRecord(buf, 'IngressTransfer', l);
  const m = decoded as WireIngressOnly;
  const fields = ingressFields(m, 'IngressTransfer', l);
  checkText(m.refusal, 'IngressTransfer.refusal', BOUNDS.refusalMaxBytes, false);
  const uploader = uploaderOf(m, version, 'IngressTransfer');
  return { ...fields, refusal: m.refusal, ...(uploader ? { uploader } : {}) };
}

/** decodeTransitTransfer - one transit->egress record, strictly. Throws ProtocolError. */
export function decodeTransitTransfer(buf: Uint8Array, limits: Limits): TransitTransfer {
  const l = checkLimits(limits);
  const { version, decoded } = parseRecord(buf, 'TransitTransfer', l);
  const m = decoded as WireTransit;
  const base = ingressFields(m, 'TransitTransfer', l);
  const verdict = toEnum(m.verdict, VERDICT, 'TransitTransfer.verdict', 'verdict');
  const checks = m.checks.map((c, i): CheckResult => {
    const where = `TransitTransfer.checks[${i}]`;
    checkText(c.name, `${where}.name`, BOUNDS.checkNameMaxBytes, true);
    const outcome = toEnum(c.outcome, OUTCOME, `${where}.outcome`, `checks[${i}].outcome`);
    checkText(c.reason, `${where}.reason`, BOUNDS.checkReasonMaxBytes, false);
    checkText(c.engine, `${where}.engine`, BOUNDS.engineMaxBytes, false);
    return { name: c.name, outcome, reason: c.reason, engine: c.engine };
  });
  checkTimestamp(m.checkedAt, 'TransitTransfer.checkedAt');
  const uploader = uploaderOf(m, version, 'TransitTransfer');
  return { ...base, verdict, checks, checkedAt: m.checkedAt, ...(uploader ? { uploader } : {}) };
}

/** decodeAck - one downstream->upstream ack, strictly. Throws ProtocolError. */
export function decodeAck(buf: Uint8Array, limits: Limits): Ack {
  const l = checkLimits(limits);
  const m = parseRecord(buf, 'Ack', l).decoded as WireAck;
  checkId(m.id, 'Ack.id');
  const sha256 = wireBytes(m.sha256, 'Ack.sha256');
  checkSha256(sha256, 'Ack.sha256');
  const status = toEnum(m.status, ACK_STATUS, 'Ack.status', 'status');
  checkText(m.reason, 'Ack.reason', BOUNDS.ackReasonMaxBytes, false);
  return { id: m.id, sha256: Uint8Array.from(sha256), status, reason: m.reason };
}

// ---------------------------------------------------------------------------
// Encoding

/** fromEnum - a string enum value as its wire number; anything else is refused. */
function fromEnum<T extends string>(v: unknown, table: { toWire: Map<T, number> }, where: string, path: string): number {
  expect(v, 'string', where);
  const n = table.toWire.get(v as T);
  if (n === undefined) throw new ProtocolError('unknown-enum', `${where}: not one of ${[...table.toWire.keys()].join(', ')}`, path);
  return n;
}

/** checkIngressObject - the object-side twin of ingressFields. */
function checkIngressObject(t: TransferFields, message: string, limits: Limits): void {
  if (typeof t !== 'object' || t === null) throw new TypeError(`${message}: expected an object`);
  checkId(t.id, `${message}.id`);
  checkText(t.name, `${message}.name`, limits.maxNameBytes, true);
  checkSize(t.size, `${message}.size`, limits.maxFileSize);
  checkSha256(t.sha256, `${message}.sha256`);
  checkTimestamp(t.receivedAt, `${message}.receivedAt`);
  if (t.uploader !== undefined) checkUploader(t.uploader, `${message}.uploader`);
}

/** finish - encode a checked wire object and enforce the record cap. */
function finish(message: MessageName, wire: Record<string, unknown>, limits: Limits): Uint8Array {
  const bytes = types[message].encode(wire).finish();
  if (bytes.length > limits.maxRecordBytes) {
    throw new ProtocolError('record-too-large', `${message}: record of ${bytes.length} bytes, at most ${limits.maxRecordBytes}`);
  }
  return bytes;
}

/** encodeIngressTransfer - validate and serialize an ingress->transit record. Throws ProtocolError. */
export function encodeIngressTransfer(t: IngressTransfer, limits: Limits): Uint8Array {
  const l = checkLimits(limits);
  checkIngressObject(t, 'IngressTransfer', l);
  checkText(t.refusal, 'IngressTransfer.refusal', BOUNDS.refusalMaxBytes, false);
  return finish(
    'IngressTransfer',
    { id: t.id, name: t.name, size: t.size, sha256: t.sha256, version: PROTOCOL_VERSION, receivedAt: t.receivedAt, refusal: t.refusal, uploader: t.uploader ?? '' },
    l,
  );
}

/** encodeTransitTransfer - validate and serialize a transit->egress record. Throws ProtocolError. */
export function encodeTransitTransfer(t: TransitTransfer, limits: Limits): Uint8Array {
  const l = checkLimits(limits);
  checkIngressObject(t, 'TransitTransfer', l);
  const verdict = fromEnum(t.verdict, VERDICT, 'TransitTransfer.verdict', 'verdict');
  if (!Array.isArray(t.checks)) throw new TypeError('TransitTransfer.checks: expected an array');
  if (t.checks.length > BOUNDS.maxChecks) {
    throw new ProtocolError('too-many-entries', `TransitTransfer.checks: ${t.checks.length} entries, at most ${BOUNDS.maxChecks}`, 'checks');
  }
  const checks = t.checks.map((c, i) => {
    const where = `TransitTransfer.checks[${i}]`;
    if (typeof c !== 'object' || c === null) throw new TypeError(`${where}: expected an object`);
    checkText(c.name, `${where}.name`, BOUNDS.checkNameMaxBytes, true);
    const outcome = fromEnum(c.outcome, OUTCOME, `${where}.outcome`, `checks[${i}].outcome`);
    checkText(c.reason, `${where}.reason`, BOUNDS.checkReasonMaxBytes, false);
    checkText(c.engine, `${where}.engine`, BOUNDS.engineMaxBytes, false);
    return { name: c.name, outcome, reason: c.reason, engine: c.engine };
  });
  checkTimestamp(t.checkedAt, 'TransitTransfer.checkedAt');
  return finish(
    'TransitTransfer',
    {
      id: t.id,
      name: t.name,
      size: t.size,
      sha256: t.sha256,
      version: PROTOCOL_VERSION,
      receivedAt: t.receivedAt,
      verdict,
      checks,
      checkedAt: t.checkedAt,
      uploader: t.uploader ?? '',
    },
    l,
  );
}

/** encodeAck - validate and serialize an ack. Throws ProtocolError. */
export function encodeAck(a: Ack, limits: Limits): Uint8Array {
  const l = checkLimits(limits);
  if (typeof a !== 'object' || a === null) throw new TypeError('Ack: expected an object');
  checkId(a.id, 'Ack.id');
  checkSha256(a.sha256, 'Ack.sha256');
  const status = fromEnum(a.status, ACK_STATUS, 'Ack.status', 'status');
  checkText(a.reason, 'Ack.reason', BOUNDS.ackReasonMaxBytes, false);
  return finish('Ack', { version: PROTOCOL_VERSION, id: a.id, sha256: a.sha256, status, reason: a.reason }, l);
}

/** isProtocolError - narrow an unknown thrown value. */
export function isProtocolError(err: unknown): err is ProtocolError {
  return err instanceof ProtocolError;
}

