/*
 * NAME
 *   errors - ProtocolError, the one way a record is refused
 *
 * SYNOPSIS
 *   import { ProtocolError, type ProtocolReason } from './errors.js';
 *   throw new ProtocolError('bad-sha256-length', 'IngressTransfer.sha256: 31 bytes, expected 32', 'sha256');
 *
 * DESCRIPTION
 *   Every decoder and encoder in this package either returns a valid value
 *   or throws a ProtocolError. `reason` is a stable machine code (listed
 *   below and in docs/protocol.md), `field` names the offending field when
 *   there is one, `message` is for humans and never contains record bytes
 *   beyond a short, escaped excerpt.
 *
 *   A TypeError or RangeError from this package means the caller broke the
 *   API (wrong JS type, nonsensical limits): a bug, not bad input.
 */

/** The stable refusal codes. Adding one is an API change: document it in docs/protocol.md. */
export const PROTOCOL_REASONS = [
  'record-too-large', // longer than limits.maxRecordBytes (checked before parsing)
  'empty-record', // zero bytes
  'bad-wire-format', // truncated, overlong varint, field 0, groups, trailing garbage, overflow
  'wrong-wire-type', // a known field encoded with another wire type
  'unknown-field', // a field number the schema of this hop does not define
  'duplicate-field', // a non-repeated field present twice
  'too-many-entries', // a repeated field over its bound (checks: 64)
  'missing-field', // a required field absent or empty (proto3: zero value)
  'bad-version', // version not 1 or 2 (0 = absent)
  'bad-sha256-length', // sha256 present but not 32 bytes
  'size-over-policy', // size > limits.maxFileSize or not a safe integer
  'string-too-long', // a string over its byte bound
  'bad-id', // id not 1-64 chars of [A-Za-z0-9_-]
  'bad-uploader', // uploader not a system user name (^[a-z_][a-z0-9_-]{0,31}$)
  'unknown-enum', // enum value not defined by the schema
  'unspecified-enum', // enum value 0
  'bad-utf8', // a string field that is not valid UTF-8
  'bad-timestamp', // not YYYY-MM-DDTHH:MM:SS[.f{1,9}]Z or not a real instant
] as const;

export type ProtocolReason = (typeof PROTOCOL_REASONS)[number];

/** ProtocolError - a record (or an object to encode) that this protocol refuses. */
export class ProtocolError extends Error {
  readonly reason: ProtocolReason;
  /** The offending field, e.g. 'sha256' or 'checks[2].outcome'; undefined for whole-record problems. */
  readonly field: string | undefined;
  constructor(reason: ProtocolReason, message: string, field?: string) {
    super(message);
    this.name = 'ProtocolError';
    this.reason = reason;
    this.field = field;
  }
}
