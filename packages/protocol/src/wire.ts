/*
 * NAME
 *   wire - a strict protobuf wire-format walker, driven by the schema
 *
 * SYNOPSIS
 *   import { walk } from './wire.js';
 *   const { version, unknown } = walk(bytes, wireSchemas.IngressTransfer, { 'TransitTransfer.checks': 64 });
 *
 * DESCRIPTION
 *   protobufjs decodes leniently: it skips unknown fields, lets the last of
 *   two copies of a field win, truncates over-long varints to 32 bits for
 *   uint32 and enum fields, and accepts overlong varint encodings. Each is a
 *   way for a hostile peer to make two readers see two different records
 *   (protobuf.js#775; style.md "defaults fail closed"). So before protobufjs
 *   sees a record, walk() reads every tag and value once and throws a
 *   ProtocolError for:
 *
 *     bad-wire-format   truncated varint/length/fixed value, varint over 10
 *                       bytes or over 64 bits, non-canonical (overlong)
 *                       varint, field number 0, tag over 32 bits, wire
 *                       types 3/4 (groups) and 6/7, uint32 over 2^32-1,
 *                       nested message whose bytes do not end exactly at
 *                       its length
 *     wrong-wire-type   a known field with another wire type
 *     duplicate-field   a non-repeated field seen twice (also nested)
 *     too-many-entries  a repeated field over its bound
 *     unknown-enum      an enum varint outside 0..2^31-1 (negative or not
 *                       an int32 at all; protobufjs would truncate it)
 *     bad-utf8          a string field whose raw bytes are not UTF-8
 *
 *   Each field is first read by its own wire type and only then judged
 *   against the schema, so a record cut short is always bad-wire-format,
 *   whatever field it was cut in.
 *
 *   Unknown field numbers are skipped over (their wire type still has to be
 *   well formed) and only reported: walk() returns the first one, so the
 *   caller can first say "bad-version" to a peer from the future and
 *   "unknown-field" otherwise. It also returns the raw top-level version.
 *
 *   Field order is not checked: the protobuf spec lets encoders emit fields
 *   in any order, and order carries no meaning here.
 */
import { isUtf8 } from 'node:buffer';
import { ProtocolError } from './errors.js';
import type { WireField, WireSchema } from './schema.js';

export interface WalkResult {
  /** The raw top-level version varint, or undefined when absent. */
  version: number | undefined;
  /** Path of the first unknown field, e.g. 'field 7' or 'checks[0].field 9', or undefined. */
  unknown: string | undefined;
}

/** Bounds for repeated fields, keyed 'Message.field'. A repeated field without a bound is a bug. */
export type RepeatedBounds = Readonly<Record<string, number>>;

const UINT32_MAX = 0xffff_ffff;
const INT32_MAX = 0x7fff_ffff;

/** Cursor - a read position over one record; every read is bounds-checked against `end`. */
class Cursor {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    start: number,
    public end: number,
  ) {
    this.pos = start;
  }

  /**
   * varint - read one canonical varint. The result is exact below 2^53 and
   * merely "at least 2^53" above, which is all any caller needs (lengths,
   * tags, uint32 and enum values are range-checked far below that; uint64
   * values are re-read exactly by protobufjs as a Long).
   */
  varint(what: string): number {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw wire(`${what}: truncated varint`);
      const b = this.buf[this.pos++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (i > 0 && b === 0) throw wire(`${what}: non-canonical (overlong) varint`);
        if (i === 9 && b > 1) throw wire(`${what}: varint over 64 bits`);
        return value;
      }
      scale *= 128;
    }
    throw wire(`${what}: varint longer than 10 bytes`);
  }

  /** skip - advance n bytes that must all be inside the record. */
  skip(n: number, what: string): void {
    if (n > this.end - this.pos) throw wire(`${what}: ${n} bytes announced, ${this.end - this.pos} left`);
    this.pos += n;
  }
}

/** wire - a bad-wire-format refusal. */
function wire(message: string, field?: string): ProtocolError {
  return new ProtocolError('bad-wire-format', message, field);
}

/** walk - check a whole record against `schema`; see DESCRIPTION. */
export function walk(buf: Uint8Array, schema: WireSchema, bounds: RepeatedBounds): WalkResult {
  const result: WalkResult = { version: undefined, unknown: undefined };
  const cur = new Cursor(buf, 0, buf.length);
  walkMessage(cur, schema, bounds, '', result, true);
  return result;
}

/**
 * walkMessage - walk fields from cur.pos to cur.end (one message, possibly
 * nested). Each field is first read structurally by its own wire type, so a
 * truncated record is always bad-wire-format; only then is it judged
 * against the schema.
 */
function walkMessage(
  cur: Cursor,
  schema: WireSchema,
  bounds: RepeatedBounds,
  prefix: string,
  result: WalkResult,
  top: boolean,
): void {
  const seen = new Set<number>();
  const counts = new Map<number, number>();
  while (cur.pos < cur.end) {
    const tag = cur.varint(`${schema.name}: tag`);
    if (tag > UINT32_MAX) throw wire(`${schema.name}: tag over 32 bits`);
    const number = tag >>> 3;
    const wireType = tag & 7;
    if (number === 0) throw wire(`${schema.name}: field number 0`);
    const field = schema.byNumber.get(number);
    const path = field === undefined ? `${prefix}field ${number}` : `${prefix}${field.name}`;
    const value = readValue(cur, wireType, `${schema.name}.${path}`);
    if (field === undefined) {
      result.unknown ??= path;
      continue;
    }
    if (wireType !== field.wireType) {
      throw new ProtocolError('wrong-wire-type', `${schema.name}.${path}: wire type ${wireType}, expected ${field.wireType}`, path);
    }
    let index = 0;
    if (field.repeated) {
      index = counts.get(number) ?? 0;
      counts.set(number, index + 1);
      const max = bounds[`${schema.name}.${field.name}`];
      if (max === undefined) throw new Error(`protocol: no bound for repeated field ${schema.name}.${field.name}`);
      if (index >= max) throw new ProtocolError('too-many-entries', `${schema.name}.${path}: more than ${max} entries`, path);
    } else {
      if (seen.has(number)) throw new ProtocolError('duplicate-field', `${schema.name}.${path}: appears more than once`, path);
      seen.add(number);
    }
    checkValue(cur, schema, field, value, field.repeated ? `${path}[${index}]` : path, bounds, result, top);
  }
}

/**
 * readValue - consume one value of the given wire type. Returns the varint
 * for wire type 0, the payload length for wire type 2 (the payload is the
 * `length` bytes just before cur.pos), 0 otherwise.
 */
function readValue(cur: Cursor, wireType: number, what: string): number {
  switch (wireType) {
    case 0:
      return cur.varint(what);
    case 1:
      cur.skip(8, what);
      return 0;
    case 2: {
      const len = cur.varint(`${what} length`);
      cur.skip(len, what);
      return len;
    }
    case 5:
      cur.skip(4, what);
      return 0;
    default:
      // 3/4 are proto2 groups (never used here), 6/7 do not exist.
      throw wire(`${what}: wire type ${wireType} is not accepted`);
  }
}

/** checkValue - judge one already-read value of a known field against its declared type. */
function checkValue(
  cur: Cursor,
  schema: WireSchema,
  field: WireField,
  value: number,
  path: string,
  bounds: RepeatedBounds,
  result: WalkResult,
  top: boolean,
): void {
  const what = `${schema.name}.${path}`;
  switch (field.kind) {
    case 'uint64':
    case 'bytes':
      return;
    case 'uint32':
      if (value > UINT32_MAX) throw wire(`${what}: value over 2^32-1`, path);
      if (top && field.number === schema.versionField) result.version = value;
      return;
    case 'enum':
      if (value > INT32_MAX) throw new ProtocolError('unknown-enum', `${what}: enum value out of range`, path);
      return;
    case 'string':
      if (!isUtf8(cur.buf.subarray(cur.pos - value, cur.pos))) {
        throw new ProtocolError('bad-utf8', `${what}: not valid UTF-8`, path);
      }
      return;
    case 'message': {
      const outer = { pos: cur.pos, end: cur.end };
      cur.pos -= value;
      cur.end = outer.pos;
      walkMessage(cur, field.message!, bounds, `${path}.`, result, false);
      cur.pos = outer.pos;
      cur.end = outer.end;
      return;
    }
  }
}
