/*
 * NAME
 *   protocol.test - round trips, the pinned schema, and the one mangler table
 *
 * DESCRIPTION
 *   Records are built here by a tiny independent wire writer (raw/enc
 *   below), not by the code under test, so a mangled record is exactly the
 *   bytes a hostile peer would send. Every decoder runs through the same
 *   MANGLERS table (style.md example 3); each case names the refusal reason
 *   it expects, as openssh's regress/integrity.sh insists on a MAC error
 *   rather than any error.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import protobuf from 'protobufjs';
import {
  ACK_STATUSES,
  BOUNDS,
  PROTOCOL_REASONS,
  PROTO_PATH,
  ProtocolError,
  decodeAck,
  decodeIngressTransfer,
  decodeTransitTransfer,
  encodeAck,
  encodeIngressTransfer,
  encodeTransitTransfer,
  isTimestamp,
  largestFixedRecord,
  truncateUtf8,
  type Ack,
  type IngressTransfer,
  type Limits,
  type ProtocolReason,
  type TransitTransfer,
} from './index.js';

/** The limits every codec call here uses unless a case says otherwise: a stage's defaults, 64 KiB records, 4 GiB files, 4096-byte names. */
const LIMITS: Limits = { maxRecordBytes: 64 * 1024, maxFileSize: 4 * 1024 ** 3, maxNameBytes: 4096 };

// ---------------------------------------------------------------------------
// An independent wire writer

type Raw = { no: number; wt: number; v: bigint | Uint8Array | Raw[] };

function varint(n: bigint): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, n);
  do {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? b | 0x80 : b);
  } while (v > 0n);
  return out;
}

function enc(fields: Raw[]): Uint8Array {
  const out: number[] = [];
  for (const f of fields) {
    out.push(...varint(BigInt(f.no * 8 + f.wt)));
    if (typeof f.v === 'bigint') {
      out.push(...varint(f.v));
    } else {
      const body = f.v instanceof Uint8Array ? f.v : enc(f.v);
      out.push(...varint(BigInt(body.length)), ...body);
    }
  }
  return Uint8Array.from(out);
}

const u = (no: number, n: number | bigint): Raw => ({ no, wt: 0, v: BigInt(n) });
const b = (no: number, bytes: Uint8Array | number[]): Raw => ({ no, wt: 2, v: Uint8Array.from(bytes) });
const s = (no: number, text: string): Raw => b(no, Buffer.from(text, 'utf8'));
const m = (no: number, fields: Raw[]): Raw => ({ no, wt: 2, v: fields });
const cat = (...parts: (Uint8Array | number[])[]): Uint8Array => Uint8Array.from(parts.flatMap((p) => [...p]));

/** replace - `fields` with field `no` replaced (or removed when `by` is empty). */
const replace = (fields: Raw[], no: number, ...by: Raw[]): Raw[] => {
  const i = fields.findIndex((f) => f.no === no);
  if (i < 0) return [...fields, ...by];
  return [...fields.slice(0, i), ...by, ...fields.slice(i + 1)];
};

// ---------------------------------------------------------------------------
// Fixtures

const SHA = Uint8Array.from({ length: 32 }, (_, i) => i * 7 + 1);
const AT = '2026-11-22T06:21:32.123Z';
const AT2 = '2026-11-22T06:21:33.456Z';

const baseObj = { id: 'tr-0001_A', name: 'report.pdf', size: 12345, sha256: SHA, receivedAt: AT };
const ingressObj: IngressTransfer = { ...baseObj, refusal: '' };
const ingressRaw: Raw[] = [s(1, 'tr-0001_A'), s(2, 'report.pdf'), u(3, 12345), b(4, SHA), u(5, 2), s(6, AT)];

const transitObj: TransitTransfer = {
  ...baseObj,
  verdict: 'accepted',
  checks: [
    { name: 'clamav', outcome: 'pass', reason: '', engine: 'clamav 1.4.6/db 27000' },
    { name: 'size', outcome: 'pass', reason: 'within policy', engine: '' },
  ],
  checkedAt: AT2,
};
const checkRaw: Raw[] = [s(1, 'clamav'), u(2, 1), s(4, 'clamav 1.4.6/db 27000')];
const transitRaw: Raw[] = [
  ...ingressRaw,
  u(7, 1),
  m(8, checkRaw),
  m(8, [s(1, 'size'), u(2, 1), s(3, 'within policy')]),
  s(9, AT2),
];

const ackObj: Ack = { id: 'tr-0001_A', sha256: SHA, status: 'delivered', reason: 'stored as report.pdf' };
const ackRaw: Raw[] = [u(1, 2), s(2, 'tr-0001_A'), b(3, SHA), u(4, 1), s(5, 'stored as report.pdf')];

/** Codec - one decoder and the field roles the manglers need (undefined = no such field). */
interface Codec {
  name: 'IngressTransfer' | 'TransitTransfer' | 'Ack';
  decode(buf: Uint8Array, limits: Limits): unknown;
  encode(): Uint8Array;
  obj: unknown;
  raw: Raw[];
  version: number;
  id: number;
  sha256: number;
  /** Free text that may hold anything valid (name, or the ack's reason) and its byte bound. */
  text: number;
  textMax: number;
  size?: number;
  enumField?: number;
  timestamps: number[];
  nested?: number;
  /** Fields that may be absent (proto3 zero value is valid). */
  optional: number[];
  /** A field number this schema does not define. */
  unknown: number;
}

const CODECS: Codec[] = [
  {
    name: 'IngressTransfer',
    decode: decodeIngressTransfer,
    encode: () => encodeIngressTransfer(ingressObj, LIMITS),
    obj: ingressObj,
    raw: ingressRaw,
    version: 5,
    id: 1,
    sha256: 4,
    text: 2,
    textMax: LIMITS.maxNameBytes,
    size: 3,
    timestamps: [6],
    optional: [3],
    unknown: 7,
  },
  {
    name: 'TransitTransfer',
    decode: decodeTransitTransfer,
    encode: () => encodeTransitTransfer(transitObj, LIMITS),
    obj: transitObj,
    raw: transitRaw,
    version: 5,
    id: 1,
    sha256: 4,
    text: 2,
    textMax: LIMITS.maxNameBytes,
    size: 3,
    enumField: 7,
    timestamps: [6, 9],
    nested: 8,
    optional: [3, 8],
    unknown: 10,
  },
  {
    name: 'Ack',
    decode: decodeAck,
    encode: () => encodeAck(ackObj, LIMITS),
    obj: ackObj,
    raw: ackRaw,
    version: 1,
    id: 2,
    sha256: 3,
    text: 5,
    textMax: BOUNDS.ackReasonMaxBytes,
    enumField: 4,
    timestamps: [],
    optional: [5],
    unknown: 6,
  },
];

// ---------------------------------------------------------------------------
// Helpers

type Expect = ProtocolReason | 'ok' | 'any';
interface Case {
  what: string;
  bytes: Uint8Array;
  expect: Expect;
  limits?: Partial<Limits>;
}

/** outcome - 'ok' or the reason; anything thrown other than a ProtocolError fails the test. */
function outcome(decode: Codec['decode'], bytes: Uint8Array, limits?: Partial<Limits>): string {
  try {
    decode(bytes, { ...LIMITS, ...limits });
    return 'ok';
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    return err.reason;
  }
}

function runCases(codec: Codec, cases: Case[]): void {
  const wrong: string[] = [];
  for (const c of cases) {
    const got = outcome(codec.decode, c.bytes, c.limits);
    const okay = c.expect === 'any' ? got !== 'ok' : got === c.expect;
    if (!okay) wrong.push(`${c.what}: expected ${c.expect}, got ${got}`);
  }
  expect(wrong).toEqual([]);
}

/** Deterministic PRNG (mulberry32), so "random bytes" is the same every run. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INVALID_UTF8: [string, number[]][] = [
  ['lone 0xff', [0x66, 0xff, 0x67]],
  ['overlong "/"', [0xc0, 0xaf]],
  ['UTF-16 surrogate', [0xed, 0xa0, 0x80]],
  ['truncated sequence', [0x61, 0xe2, 0x82]],
  ['lone continuation', [0x80]],
  ['above U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
];

// ---------------------------------------------------------------------------
// The one mangler table

interface Mangler {
  name: string;
  /** The cases for this codec, or undefined when the codec has no such field. */
  cases(c: Codec): Case[] | undefined;
}

const MANGLERS: Mangler[] = [
  { name: 'empty', cases: () => [{ what: 'zero bytes', bytes: new Uint8Array(0), expect: 'empty-record' }] },
  {
    name: 'truncated at every byte length',
    cases: (c) => {
      const full = enc(c.raw);
      // Cutting between two top-level fields leaves a well-formed record missing fields.
      const boundaries = new Map<number, Raw[]>();
      for (let k = 1; k < c.raw.length; k++) boundaries.set(enc(c.raw.slice(0, k)).length, c.raw.slice(0, k));
      const out: Case[] = [];
      for (let len = 0; len < full.length; len++) {
        const prefix = boundaries.get(len);
        let want: Expect = 'bad-wire-format';
        if (len === 0) want = 'empty-record';
        else if (prefix) {
          // Values are judged in field-number order; the first required one absent decides.
          const present = new Set(prefix.map((f) => f.no));
          const first = c.raw.find((f) => !present.has(f.no) && !c.optional.includes(f.no));
          want = !present.has(c.version) ? 'bad-version' : !first ? 'ok' : first.no === c.enumField ? 'unspecified-enum' : 'missing-field';
        }
        out.push({ what: `first ${len} bytes`, bytes: full.subarray(0, len), expect: want });
      }
      return out;
    },
  },
  {
    name: 'one byte appended',
    cases: (c) =>
      Array.from({ length: 256 }, (_, x) => ({
        what: `0x${x.toString(16)}`,
        bytes: cat(enc(c.raw), [x]),
        expect: 'bad-wire-format' as const,
      })),
  },
  {
    name: 'zeroed',
    cases: (c) => [{ what: 'all zero', bytes: new Uint8Array(enc(c.raw).length), expect: 'bad-wire-format' }],
  },
  {
    name: 'oversized',
    cases: (c) => {
      const full = enc(c.raw);
      return [
        { what: 'cap + 1 zero bytes', bytes: new Uint8Array(LIMITS.maxRecordBytes + 1), expect: 'record-too-large' },
        { what: 'valid record + padding field', bytes: enc([...c.raw, b(c.unknown, new Uint8Array(70_000))]), expect: 'record-too-large' },
        { what: 'valid record, cap one byte short', bytes: full, expect: 'record-too-large', limits: { maxRecordBytes: full.length - 1 } },
        { what: 'valid record, exactly at cap', bytes: full, expect: 'ok', limits: { maxRecordBytes: full.length } },
      ];
    },
  },
  {
    name: 'garbage',
    cases: (c) => [
      { what: 'HTTP request', bytes: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), expect: 'bad-wire-format' },
      { what: 'JSON', bytes: Buffer.from('{"id":"x","verdict":"accepted"}'), expect: 'bad-wire-format' },
      { what: 'all 0xff', bytes: new Uint8Array(64).fill(0xff), expect: 'bad-wire-format' },
      { what: 'varint longer than 10 bytes', bytes: cat(varint(BigInt(c.version * 8)), new Array(10).fill(0x80), [0x01]), expect: 'bad-wire-format' },
    ],
  },
  {
    name: 'random bytes',
    cases: () => {
      const rnd = prng(20261122);
      return Array.from({ length: 200 }, (_, i) => {
        const len = 1 + Math.floor(rnd() * 300);
        const bytes = Uint8Array.from({ length: len }, () => Math.floor(rnd() * 256));
        return { what: `random #${i}`, bytes, expect: 'any' as const };
      });
    },
  },
  {
    name: 'unknown field number',
    cases: (c) => {
      const x = c.unknown;
      return [
        { what: `field ${x} varint`, bytes: enc([...c.raw, u(x, 1)]), expect: 'unknown-field' },
        { what: `field ${x} varint 0 first`, bytes: enc([u(x, 0), ...c.raw]), expect: 'unknown-field' },
        { what: `field ${x} fixed64`, bytes: cat(enc(c.raw), varint(BigInt(x * 8 + 1)), new Uint8Array(8)), expect: 'unknown-field' },
        { what: `field ${x} bytes`, bytes: enc([...c.raw, s(x, 'x')]), expect: 'unknown-field' },
        { what: `field ${x} fixed32`, bytes: cat(enc(c.raw), varint(BigInt(x * 8 + 5)), new Uint8Array(4)), expect: 'unknown-field' },
        { what: 'field 2^29-1', bytes: enc([...c.raw, u(2 ** 29 - 1, 1)]), expect: 'unknown-field' },
        { what: 'field 1000 as a message', bytes: enc([...c.raw, m(1000, [u(1, 1)])]), expect: 'unknown-field' },
        { what: `field ${x} fixed64, truncated`, bytes: cat(enc(c.raw), varint(BigInt(x * 8 + 1)), new Uint8Array(7)), expect: 'bad-wire-format' },
        { what: `field ${x} group start`, bytes: cat(enc(c.raw), varint(BigInt(x * 8 + 3))), expect: 'bad-wire-format' },
        { what: `field ${x} group end`, bytes: cat(enc(c.raw), varint(BigInt(x * 8 + 4))), expect: 'bad-wire-format' },
        { what: `field ${x} wire type 6`, bytes: cat(enc(c.raw), varint(BigInt(x * 8 + 6)), [0]), expect: 'bad-wire-format' },
        { what: `field ${x} wire type 7`, bytes: cat(enc(c.raw), varint(BigInt(x * 8 + 7)), [0]), expect: 'bad-wire-format' },
        { what: 'field number 0', bytes: cat(enc(c.raw), [0x00, 0x00]), expect: 'bad-wire-format' },
        { what: 'tag over 32 bits', bytes: cat(enc(c.raw), varint(2n ** 35n), [0]), expect: 'bad-wire-format' },
        ...(c.nested === undefined
          ? []
          : [
              {
                what: 'unknown field 9 inside CheckResult',
                bytes: enc(replace(c.raw, c.nested, m(c.nested, [...checkRaw, u(9, 1)]))),
                expect: 'unknown-field' as const,
              },
            ]),
      ];
    },
  },
  {
    name: 'field repeated',
    cases: (c) => {
      const out: Case[] = c.raw.map((f, i) => ({
        what: `field ${f.no} twice`,
        bytes: enc([...c.raw.slice(0, i + 1), f, ...c.raw.slice(i + 1)]),
        expect: f.no === c.nested ? 'ok' : 'duplicate-field',
      }));
      out.push({ what: 'version twice, first 2 then 1', bytes: enc([u(c.version, 2), ...c.raw]), expect: 'duplicate-field' });
      out.push({ what: 'sha256 twice, far apart', bytes: enc([...c.raw, b(c.sha256, SHA)]), expect: 'duplicate-field' });
      if (c.nested !== undefined) {
        out.push({
          what: 'outcome twice inside CheckResult (fail, then pass)',
          bytes: enc(replace(c.raw, c.nested, m(c.nested, [s(1, 'clamav'), u(2, 2), u(2, 1)]))),
          expect: 'duplicate-field',
        });
      }
      return out;
    },
  },
  {
    name: 'wrong wire type',
    cases: (c) => {
      const out: Case[] = c.raw.map((f) => {
        const swapped: Raw = typeof f.v === 'bigint' ? b(f.no, [1]) : u(f.no, 1);
        return { what: `field ${f.no} as wire type ${swapped.wt}`, bytes: enc(replace(c.raw, f.no, swapped)), expect: 'wrong-wire-type' };
      });
      out.push({
        what: 'sha256 as fixed64',
        bytes: cat(enc(replace(c.raw, c.sha256)), varint(BigInt(c.sha256 * 8 + 1)), new Uint8Array(8)),
        expect: 'wrong-wire-type',
      });
      if (c.nested !== undefined) {
        out.push({
          what: 'CheckResult.outcome as bytes',
          bytes: enc(replace(c.raw, c.nested, m(c.nested, [s(1, 'clamav'), b(2, [1])]))),
          expect: 'wrong-wire-type',
        });
      }
      return out;
    },
  },
  {
    name: 'non-canonical varint',
    cases: (c) => {
      const rest = enc(replace(c.raw, c.version));
      return [
        { what: 'version 1 as 0x81 0x00', bytes: cat(rest, varint(BigInt(c.version * 8)), [0x81, 0x00]), expect: 'bad-wire-format' },
        { what: 'version 1 as 10 bytes', bytes: cat(rest, varint(BigInt(c.version * 8)), [0x81, ...new Array(8).fill(0x80), 0x00]), expect: 'bad-wire-format' },
        { what: 'tag as 2 bytes', bytes: cat(rest, [c.version * 8 + 0x80, 0x00, 0x01]), expect: 'bad-wire-format' },
        { what: 'varint over 64 bits', bytes: cat(rest, varint(BigInt(c.version * 8)), [...new Array(9).fill(0xff), 0x02]), expect: 'bad-wire-format' },
      ];
    },
  },
  {
    name: 'sha256 of 0/31/33 bytes',
    cases: (c) => [
      { what: '31 bytes', bytes: enc(replace(c.raw, c.sha256, b(c.sha256, SHA.subarray(0, 31)))), expect: 'bad-sha256-length' },
      { what: '33 bytes', bytes: enc(replace(c.raw, c.sha256, b(c.sha256, cat(SHA, [0])))), expect: 'bad-sha256-length' },
      { what: '64 bytes (hex text)', bytes: enc(replace(c.raw, c.sha256, s(c.sha256, 'ab'.repeat(32)))), expect: 'bad-sha256-length' },
      { what: 'explicit empty', bytes: enc(replace(c.raw, c.sha256, b(c.sha256, []))), expect: 'missing-field' },
      { what: 'absent', bytes: enc(replace(c.raw, c.sha256)), expect: 'missing-field' },
    ],
  },
  {
    name: 'version 0/3/absent/overflow',
    cases: (c) => [
      { what: 'version 0', bytes: enc(replace(c.raw, c.version, u(c.version, 0))), expect: 'bad-version' },
      { what: 'version 2 (this version)', bytes: enc(replace(c.raw, c.version, u(c.version, 2))), expect: 'ok' },
      { what: 'version 3', bytes: enc(replace(c.raw, c.version, u(c.version, 3))), expect: 'bad-version' },
      { what: 'version 2^32-1', bytes: enc(replace(c.raw, c.version, u(c.version, 2 ** 32 - 1))), expect: 'bad-version' },
      { what: 'absent', bytes: enc(replace(c.raw, c.version)), expect: 'bad-version' },
      // protobufjs alone would truncate 2^32+1 to 1 and accept it.
      { what: 'version 2^32+1', bytes: enc(replace(c.raw, c.version, u(c.version, 2 ** 32 + 1))), expect: 'bad-wire-format' },
      { what: 'version 3 with an unknown field', bytes: enc([...replace(c.raw, c.version, u(c.version, 3)), u(c.unknown, 1)]), expect: 'bad-version' },
    ],
  },
  {
    name: 'verdict field smuggled in (field 7 = ACCEPTED)',
    cases: (c) => [
      {
        what: 'verdict appended',
        bytes: enc([...c.raw, u(7, 1)]),
        // Unknown to IngressTransfer and Ack; TransitTransfer already has its own verdict.
        expect: c.name === 'TransitTransfer' ? 'duplicate-field' : 'unknown-field',
      },
    ],
  },
  {
    name: 'unknown and unspecified enum values',
    cases: (c) => {
      if (c.enumField === undefined) return undefined;
      const e = c.enumField;
      const out: Case[] = [
        { what: 'value 3/4 (one past the last)', bytes: enc(replace(c.raw, e, u(e, c.name === 'Ack' ? 4 : 3))), expect: 'unknown-enum' },
        { what: 'value 1000', bytes: enc(replace(c.raw, e, u(e, 1000))), expect: 'unknown-enum' },
        { what: 'value -1 (10-byte varint)', bytes: enc(replace(c.raw, e, u(e, -1n))), expect: 'unknown-enum' },
        // protobufjs alone would read 2^32+1 as int32 1 = ACCEPTED / DELIVERED.
        { what: 'value 2^32+1', bytes: enc(replace(c.raw, e, u(e, 2 ** 32 + 1))), expect: 'unknown-enum' },
        { what: 'value 2^31', bytes: enc(replace(c.raw, e, u(e, 2 ** 31))), expect: 'unknown-enum' },
        { what: 'explicit 0', bytes: enc(replace(c.raw, e, u(e, 0))), expect: 'unspecified-enum' },
        { what: 'absent', bytes: enc(replace(c.raw, e)), expect: 'unspecified-enum' },
      ];
      if (c.nested !== undefined) {
        out.push(
          { what: 'CheckResult.outcome 4', bytes: enc(replace(c.raw, c.nested, m(c.nested, [s(1, 'x'), u(2, 4)]))), expect: 'unknown-enum' },
          { what: 'CheckResult.outcome absent', bytes: enc(replace(c.raw, c.nested, m(c.nested, [s(1, 'x')]))), expect: 'unspecified-enum' },
        );
      }
      return out;
    },
  },
  {
    name: 'size over policy',
    cases: (c) => {
      if (c.size === undefined) return undefined;
      const z = c.size;
      return [
        { what: 'default cap + 1', bytes: enc(replace(c.raw, z, u(z, LIMITS.maxFileSize + 1))), expect: 'size-over-policy' },
        { what: 'exactly the default cap', bytes: enc(replace(c.raw, z, u(z, LIMITS.maxFileSize))), expect: 'ok' },
        { what: '101 with a cap of 100', bytes: enc(replace(c.raw, z, u(z, 101))), expect: 'size-over-policy', limits: { maxFileSize: 100 } },
        { what: '100 with a cap of 100', bytes: enc(replace(c.raw, z, u(z, 100))), expect: 'ok', limits: { maxFileSize: 100 } },
        { what: '2^53 with no cap', bytes: enc(replace(c.raw, z, u(z, 2n ** 53n))), expect: 'size-over-policy', limits: { maxFileSize: Number.MAX_SAFE_INTEGER } },
        { what: '2^53-1 with no cap', bytes: enc(replace(c.raw, z, u(z, 2n ** 53n - 1n))), expect: 'ok', limits: { maxFileSize: Number.MAX_SAFE_INTEGER } },
        { what: '2^64-1', bytes: enc(replace(c.raw, z, u(z, 2n ** 64n - 1n))), expect: 'size-over-policy', limits: { maxFileSize: Number.MAX_SAFE_INTEGER } },
        { what: 'absent = empty file', bytes: enc(replace(c.raw, z)), expect: 'ok' },
        { what: 'explicit 0', bytes: enc(replace(c.raw, z, u(z, 0))), expect: 'ok' },
      ];
    },
  },
  {
    name: "id with '/', 65 chars, empty, non-ASCII",
    cases: (c) => {
      const id = (v: string) => enc(replace(c.raw, c.id, s(c.id, v)));
      return [
        { what: "'../x'", bytes: id('../x'), expect: 'bad-id' },
        { what: "'a/b'", bytes: id('a/b'), expect: 'bad-id' },
        { what: '65 chars', bytes: id('a'.repeat(65)), expect: 'bad-id' },
        { what: '64 chars', bytes: id('a'.repeat(64)), expect: 'ok' },
        { what: 'space', bytes: id('a b'), expect: 'bad-id' },
        { what: 'newline at end', bytes: id('abc\n'), expect: 'bad-id' },
        { what: 'NUL', bytes: id('a\0'), expect: 'bad-id' },
        { what: 'non-ASCII letter', bytes: id('é'), expect: 'bad-id' },
        { what: 'empty', bytes: id(''), expect: 'missing-field' },
        { what: 'absent', bytes: enc(replace(c.raw, c.id)), expect: 'missing-field' },
        { what: 'invalid UTF-8', bytes: enc(replace(c.raw, c.id, b(c.id, [0x61, 0xff]))), expect: 'bad-utf8' },
      ];
    },
  },
  {
    name: 'name (free text) with invalid UTF-8',
    cases: (c) => [
      ...INVALID_UTF8.map(([what, bytes]) => ({
        what,
        bytes: enc(replace(c.raw, c.text, b(c.text, bytes))),
        expect: 'bad-utf8' as const,
      })),
      {
        what: 'valid oddities: NUL, control, bidi, BOM, emoji',
        bytes: enc(replace(c.raw, c.text, s(c.text, '\0\x1b[31m\u202e\ufeff😀/../x'))),
        expect: 'ok',
      },
      ...(c.nested === undefined
        ? []
        : [
            {
              what: 'CheckResult.reason invalid',
              bytes: enc(replace(c.raw, c.nested, m(c.nested, [s(1, 'x'), u(2, 1), b(3, [0xff])]))),
              expect: 'bad-utf8' as const,
            },
          ]),
    ],
  },
  {
    name: 'name (free text) over its byte bound',
    cases: (c) => [
      { what: `${c.textMax + 1} bytes`, bytes: enc(replace(c.raw, c.text, s(c.text, 'a'.repeat(c.textMax + 1)))), expect: 'string-too-long' },
      { what: `${c.textMax} bytes`, bytes: enc(replace(c.raw, c.text, s(c.text, 'a'.repeat(c.textMax)))), expect: 'ok' },
      {
        what: `${c.textMax} bytes of 4-byte characters + 1`,
        bytes: enc(replace(c.raw, c.text, s(c.text, '😀'.repeat(c.textMax / 4) + 'a'))),
        expect: 'string-too-long',
      },
      ...(c.size === undefined
        ? []
        : [
            {
              what: '11 bytes with maxNameBytes 10',
              bytes: enc(replace(c.raw, c.text, s(c.text, 'é'.repeat(5) + 'a'))),
              expect: 'string-too-long' as const,
              limits: { maxNameBytes: 10 },
            },
          ]),
    ],
  },
  {
    name: 'bad timestamps',
    cases: (c) => {
      if (c.timestamps.length === 0) return undefined;
      const bad = [
        '2026-11-22 06:21:32Z',
        '2026-11-22T06:21:32.123+00:00',
        '2026-11-22T06:21:32.123',
        '2026-11-22T06:21:32.1234567890Z',
        '2026-02-29T00:00:00Z',
        '2026-13-01T00:00:00Z',
        '2026-11-22T24:00:00Z',
        '2026-11-22T06:21:60Z',
        '2026-11-22T06:21:32.Z',
        '२०२६-11-22T06:21:32Z',
        ' 2026-11-22T06:21:32Z',
        'yesterday',
      ];
      return c.timestamps.flatMap((no) => [
        ...bad.map((t) => ({ what: `field ${no} = ${JSON.stringify(t)}`, bytes: enc(replace(c.raw, no, s(no, t))), expect: 'bad-timestamp' as const })),
        { what: `field ${no} absent`, bytes: enc(replace(c.raw, no)), expect: 'missing-field' as const },
        { what: `field ${no} = leap day`, bytes: enc(replace(c.raw, no, s(no, '2024-02-29T23:59:59Z'))), expect: 'ok' as const },
        { what: `field ${no} = ns`, bytes: enc(replace(c.raw, no, s(no, '2026-11-22T06:21:32.123456789Z'))), expect: 'ok' as const },
      ]);
    },
  },
  {
    name: 'required fields absent',
    cases: (c) =>
      c.raw
        .filter((f, i) => c.raw.findIndex((g) => g.no === f.no) === i)
        .map((f) => ({
          what: `without field ${f.no}`,
          bytes: enc(c.raw.filter((g) => g.no !== f.no)),
          expect: f.no === c.version ? 'bad-version' : f.no === c.enumField ? 'unspecified-enum' : c.optional.includes(f.no) ? 'ok' : 'missing-field',
        })),
  },
  {
    name: 'nested CheckResult abuse',
    cases: (c) => {
      if (c.nested === undefined) return undefined;
      const n = c.nested;
      const withChecks = (checks: Raw[][]) => enc([...c.raw.filter((f) => f.no !== n), ...checks.map((x) => m(n, x))]);
      return [
        { what: '64 checks', bytes: withChecks(new Array(64).fill(checkRaw)), expect: 'ok' },
        { what: '65 checks', bytes: withChecks(new Array(65).fill(checkRaw)), expect: 'too-many-entries' },
        { what: '1000 empty checks', bytes: withChecks(new Array(1000).fill([])), expect: 'too-many-entries' },
        { what: 'check without name', bytes: withChecks([[u(2, 1)]]), expect: 'missing-field' },
        { what: 'check name 257 bytes', bytes: withChecks([[s(1, 'n'.repeat(257)), u(2, 1)]]), expect: 'string-too-long' },
        { what: 'check reason 1025 bytes', bytes: withChecks([[s(1, 'n'), u(2, 1), s(3, 'r'.repeat(1025))]]), expect: 'string-too-long' },
        { what: 'check engine 257 bytes', bytes: withChecks([[s(1, 'n'), u(2, 1), s(4, 'e'.repeat(257))]]), expect: 'string-too-long' },
        { what: 'check length runs past the record', bytes: cat(enc(c.raw), [n * 8 + 2, 0x05, 0x08, 0x01]), expect: 'bad-wire-format' },
        {
          what: 'field inside check runs past the check',
          bytes: cat(enc(c.raw.filter((f) => f.no !== n)), [n * 8 + 2, 0x03, 0x0a, 0x05, 0x61], [0x10, 0x01]),
          expect: 'bad-wire-format',
        },
        { what: 'no checks at all', bytes: withChecks([]), expect: 'ok' },
      ];
    },
  },
];

describe('mangler table: every decoder, the same bad inputs, the named reason', () => {
  for (const codec of CODECS) {
    describe(codec.name, () => {
      it('the fixture is valid and equals what the encoder writes', () => {
        expect(Buffer.from(enc(codec.raw)).toString('hex')).toBe(Buffer.from(codec.encode()).toString('hex'));
        expect(codec.decode(enc(codec.raw), LIMITS)).toEqual(codec.obj);
      });
      for (const mangler of MANGLERS) {
        const cases = mangler.cases(codec);
        if (cases === undefined) continue;
        it(mangler.name, () => {
          expect(cases.length).toBeGreaterThan(0);
          runCases(codec, cases);
        });
      }
    });
  }

  it('every mangler applies to at least one decoder', () => {
    for (const mangler of MANGLERS) {
      expect(CODECS.some((c) => mangler.cases(c) !== undefined), mangler.name).toBe(true);
    }
  });

  it('each decoder refuses the other hops’ records', () => {
    for (const codec of CODECS) {
      for (const other of CODECS) {
        if (other === codec) continue;
        expect(outcome(codec.decode, enc(other.raw)), `${other.name} as ${codec.name}`).not.toBe('ok');
      }
    }
  });
});

// ---------------------------------------------------------------------------

describe('upstream cannot preset transit’s verdict (postfix cleanup_envelope_test)', () => {
  it('an IngressTransfer carrying verdict = ACCEPTED and a passing check is refused as unknown-field', () => {
    const smuggled = enc([...ingressRaw, u(7, 1), m(8, checkRaw), s(9, AT2)]);
    expect(() => decodeIngressTransfer(smuggled, LIMITS)).toThrow(expect.objectContaining({ reason: 'unknown-field', field: 'field 7' }));
  });
  it('a whole TransitTransfer sent upstream-style to transit is refused', () => {
    expect(outcome(decodeIngressTransfer, encodeTransitTransfer(transitObj, LIMITS))).toBe('unknown-field');
  });
  it('the ingress encoder has no way to write a verdict', () => {
    const sneaky = { ...transitObj, refusal: '' } as IngressTransfer;
    expect(decodeIngressTransfer(encodeIngressTransfer(sneaky, LIMITS), LIMITS)).toEqual(ingressObj);
  });
});

describe('round trips', () => {
  it('decodes what it encodes, for every message', () => {
    expect(decodeIngressTransfer(encodeIngressTransfer(ingressObj, LIMITS), LIMITS)).toEqual(ingressObj);
    expect(decodeTransitTransfer(encodeTransitTransfer(transitObj, LIMITS), LIMITS)).toEqual(transitObj);
    expect(decodeAck(encodeAck(ackObj, LIMITS), LIMITS)).toEqual(ackObj);
  });
  it('empty file, hostile name, rejected verdict, no checks', () => {
    const t: TransitTransfer = {
      id: 'x',
      name: '../../etc/passwd\n\u202egpj.exe\0',
      size: 0,
      sha256: new Uint8Array(32),
      receivedAt: '1970-01-01T00:00:00Z',
      verdict: 'rejected',
      checks: [],
      checkedAt: '9999-12-31T23:59:59.999999999Z',
    };
    expect(decodeTransitTransfer(encodeTransitTransfer(t, LIMITS), LIMITS)).toEqual(t);
  });
  it('every enum value', () => {
    for (const status of ACK_STATUSES) expect(decodeAck(encodeAck({ ...ackObj, status }, LIMITS), LIMITS).status).toBe(status);
    for (const outcome of ['pass', 'fail', 'error'] as const) {
      const t = { ...transitObj, verdict: 'rejected' as const, checks: [{ name: 'c', outcome, reason: 'r', engine: 'e' }] };
      expect(decodeTransitTransfer(encodeTransitTransfer(t, LIMITS), LIMITS)).toEqual(t);
    }
  });
  it('size up to 2^53-1 when policy allows', () => {
    const big = { ...ingressObj, size: Number.MAX_SAFE_INTEGER };
    const limits = { ...LIMITS, maxFileSize: Number.MAX_SAFE_INTEGER };
    expect(decodeIngressTransfer(encodeIngressTransfer(big, limits), limits)).toEqual(big);
  });
  it('sizes over 2^32 travel as 64-bit integers, exactly, under a policy that allows them', () => {
    // 4 GiB was the encoders' old default cap; a stage configured above it must send and receive such sizes.
    const limits = { ...LIMITS, maxFileSize: 6 * 1024 ** 3 };
    for (const size of [2 ** 32 - 1, 2 ** 32, 2 ** 32 + 1, 4 * 1024 ** 3 + 1, 5 * 1024 ** 3 + 12_345, 6 * 1024 ** 3]) {
      const i = { ...ingressObj, size };
      expect(decodeIngressTransfer(encodeIngressTransfer(i, limits), limits)).toEqual(i);
      const t = { ...transitObj, size };
      expect(decodeTransitTransfer(encodeTransitTransfer(t, limits), limits)).toEqual(t);
      // The bytes on the wire are the uint64 varint an independent writer makes.
      expect(Buffer.from(encodeIngressTransfer(i, limits))).toEqual(Buffer.from(enc(replace(ingressRaw, 3, u(3, BigInt(size))))));
      expect(decodeIngressTransfer(enc(replace(ingressRaw, 3, u(3, BigInt(size)))), limits).size).toBe(size);
    }
    // And the same policy on both ends refuses one byte more, whichever end looks.
    const over = { ...ingressObj, size: limits.maxFileSize + 1 };
    expect(() => encodeIngressTransfer(over, limits)).toThrow(expect.objectContaining({ reason: 'size-over-policy' }));
    expect(outcome(decodeIngressTransfer, enc(replace(ingressRaw, 3, u(3, BigInt(over.size)))), limits)).toBe('size-over-policy');
  });
  it('largestFixedRecord: the largest IngressTransfer or Ack encodes to exactly that many bytes, and fits a cap of that size', () => {
    for (const maxNameBytes of [16, 1024, 4096]) {
      const largest = largestFixedRecord(maxNameBytes);
      const limits = { maxRecordBytes: largest, maxFileSize: Number.MAX_SAFE_INTEGER, maxNameBytes };
      const i: IngressTransfer = {
        id: 'i'.repeat(64),
        name: 'n'.repeat(maxNameBytes),
        size: Number.MAX_SAFE_INTEGER,
        sha256: SHA,
        receivedAt: '9999-12-31T23:59:59.999999999Z',
        refusal: 'r'.repeat(BOUNDS.refusalMaxBytes),
      };
      const a: Ack = { id: 'i'.repeat(64), sha256: SHA, status: 'refused', reason: 'r'.repeat(BOUNDS.ackReasonMaxBytes) };
      expect(Math.max(encodeIngressTransfer(i, limits).length, encodeAck(a, limits).length)).toBe(largest);
      expect(() => encodeIngressTransfer(i, { ...limits, maxRecordBytes: largest - 1 })).toThrow(expect.objectContaining({ reason: 'record-too-large' }));
    }
  });
  it('sha256 is a fresh copy, unaffected by reuse of the receive buffer', () => {
    const rec = Buffer.from(encodeIngressTransfer(ingressObj, LIMITS));
    const t = decodeIngressTransfer(rec, LIMITS);
    rec.fill(0);
    expect(t.sha256).toEqual(SHA);
    expect(Buffer.isBuffer(t.sha256)).toBe(false);
  });
  it('accepts fields in any order (the protobuf spec allows it)', () => {
    expect(decodeIngressTransfer(enc([...ingressRaw].reverse()), LIMITS)).toEqual(ingressObj);
  });
  it('accepts a plain Uint8Array as well as a Buffer at an offset', () => {
    const rec = encodeAck(ackObj, LIMITS);
    const inside = Buffer.concat([Buffer.from([1, 2, 3]), rec]).subarray(3);
    expect(decodeAck(Uint8Array.from(rec), LIMITS)).toEqual(ackObj);
    expect(decodeAck(inside, LIMITS)).toEqual(ackObj);
  });
  it('never produces an empty record', () => {
    const a = encodeAck({ id: 'a', sha256: SHA, status: 'retry', reason: '' }, LIMITS);
    expect(a.length).toBeGreaterThan(0);
  });
});

describe('encoders refuse what decoders refuse', () => {
  const reasonOf = (f: () => unknown): string => {
    try {
      f();
      return 'ok';
    } catch (err) {
      if (err instanceof ProtocolError) return err.reason;
      return (err as Error).name;
    }
  };
  it.each<[string, () => unknown, string]>([
    ['sha256 31 bytes', () => encodeIngressTransfer({ ...ingressObj, sha256: SHA.subarray(0, 31) }, LIMITS), 'bad-sha256-length'],
    ['sha256 empty', () => encodeAck({ ...ackObj, sha256: new Uint8Array() }, LIMITS), 'missing-field'],
    ['id with /', () => encodeIngressTransfer({ ...ingressObj, id: 'a/b' }, LIMITS), 'bad-id'],
    ['empty id', () => encodeAck({ ...ackObj, id: '' }, LIMITS), 'missing-field'],
    ['empty name', () => encodeIngressTransfer({ ...ingressObj, name: '' }, LIMITS), 'missing-field'],
    ['name 4097 bytes', () => encodeIngressTransfer({ ...ingressObj, name: 'a'.repeat(4097) }, LIMITS), 'string-too-long'],
    ['name with a lone surrogate', () => encodeIngressTransfer({ ...ingressObj, name: 'a\ud800b' }, LIMITS), 'bad-utf8'],
    ['size over policy', () => encodeIngressTransfer({ ...ingressObj, size: 11 }, { ...LIMITS, maxFileSize: 10 }), 'size-over-policy'],
    ['size 2^53', () => encodeIngressTransfer({ ...ingressObj, size: 2 ** 53 }, { ...LIMITS, maxFileSize: Number.MAX_SAFE_INTEGER }), 'size-over-policy'],
    ['size -1', () => encodeIngressTransfer({ ...ingressObj, size: -1 }, LIMITS), 'RangeError'],
    ['size 1.5', () => encodeIngressTransfer({ ...ingressObj, size: 1.5 }, LIMITS), 'RangeError'],
    ['size NaN', () => encodeIngressTransfer({ ...ingressObj, size: NaN }, LIMITS), 'RangeError'],
    ['bad timestamp', () => encodeIngressTransfer({ ...ingressObj, receivedAt: 'now' }, LIMITS), 'bad-timestamp'],
    ['unknown verdict', () => encodeTransitTransfer({ ...transitObj, verdict: 'maybe' as never }, LIMITS), 'unknown-enum'],
    ['unspecified outcome', () => encodeTransitTransfer({ ...transitObj, checks: [{ name: 'c', outcome: 'OUTCOME_UNSPECIFIED' as never, reason: '', engine: '' }] }, LIMITS), 'unknown-enum'],
    ['ack status unset', () => encodeAck({ ...ackObj, status: undefined as never }, LIMITS), 'TypeError'],
    ['65 checks', () => encodeTransitTransfer({ ...transitObj, checks: new Array(65).fill(transitObj.checks[0]) }, LIMITS), 'too-many-entries'],
    ['check name empty', () => encodeTransitTransfer({ ...transitObj, checks: [{ name: '', outcome: 'pass', reason: '', engine: '' }] }, LIMITS), 'missing-field'],
    ['record over the cap', () => encodeTransitTransfer({ ...transitObj, checks: new Array(64).fill({ name: 'n'.repeat(256), outcome: 'fail', reason: 'r'.repeat(1024), engine: 'e'.repeat(256) }) }, LIMITS), 'record-too-large'],
    ['sha256 as hex string', () => encodeAck({ ...ackObj, sha256: 'ab'.repeat(32) as never }, LIMITS), 'TypeError'],
    ['name as a number', () => encodeIngressTransfer({ ...ingressObj, name: 5 as never }, LIMITS), 'TypeError'],
    ['null object', () => encodeAck(null as never, LIMITS), 'TypeError'],
    ['limits nonsense', () => encodeAck(ackObj, { ...LIMITS, maxRecordBytes: 0 }), 'RangeError'],
    ['limits NaN', () => decodeAck(encodeAck(ackObj, LIMITS), { ...LIMITS, maxFileSize: NaN }), 'RangeError'],
    ['limits missing (encoder)', () => encodeIngressTransfer(ingressObj, undefined as never), 'TypeError'],
    ['limits missing (decoder)', () => decodeAck(encodeAck(ackObj, LIMITS), undefined as never), 'TypeError'],
    ['limits without maxFileSize', () => encodeIngressTransfer(ingressObj, { maxRecordBytes: 65536, maxNameBytes: 4096 } as never), 'RangeError'],
  ])('%s', (_what, f, want) => {
    expect(reasonOf(f)).toBe(want);
  });
  it('a decoder given a non-buffer throws TypeError', () => {
    expect(() => decodeAck('abc' as never, LIMITS)).toThrow(TypeError);
  });
});

describe('schema (sluice.proto)', () => {
  const { root } = protobuf.parse(readFileSync(PROTO_PATH, 'utf8'));
  root.resolveAll();
  const field = (type: string, name: string) => root.lookupType(`sluice.v1.${type}`).fields[name]!;

  it('keeps the pinned transfer fields: id=1 string, name=2 string, size=3 uint64, sha256=4 bytes', () => {
    for (const type of ['IngressTransfer', 'TransitTransfer']) {
      expect([field(type, 'id').id, field(type, 'id').type]).toEqual([1, 'string']);
      expect([field(type, 'name').id, field(type, 'name').type]).toEqual([2, 'string']);
      expect([field(type, 'size').id, field(type, 'size').type]).toEqual([3, 'uint64']);
      expect([field(type, 'sha256').id, field(type, 'sha256').type]).toEqual([4, 'bytes']);
      expect([field(type, 'version').id, field(type, 'version').type]).toEqual([5, 'uint32']);
    }
  });
  it('gives every top-level message a version field (no valid record is empty)', () => {
    for (const type of ['IngressTransfer', 'TransitTransfer', 'Ack']) expect(field(type, 'version').type).toBe('uint32');
  });
  it('IngressTransfer has fields 1-6, refusal = 10 and uploader = 11 only; 7-9 (the verdict fields of TransitTransfer) are reserved', () => {
    const t = root.lookupType('sluice.v1.IngressTransfer');
    expect(t.fieldsArray.map((f) => f.id).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 10, 11]);
    expect(t.reserved).toEqual([[7, 7], [8, 8], [9, 9]]);
  });
  it('TransitTransfer fields 1-6 are IngressTransfer fields 1-6, same names and types', () => {
    for (const f of root.lookupType('sluice.v1.IngressTransfer').fieldsArray.filter((x) => x.id <= 6)) {
      expect([field('TransitTransfer', f.name).id, field('TransitTransfer', f.name).type]).toEqual([f.id, f.type]);
    }
  });
  it('every enum has 0 = *_UNSPECIFIED', () => {
    for (const e of ['Verdict', 'Outcome', 'AckStatus']) {
      const values = root.lookupEnum(`sluice.v1.${e}`).values;
      const zero = Object.entries(values).find(([, n]) => n === 0)?.[0];
      expect(zero).toMatch(/_UNSPECIFIED$/);
    }
  });
});

describe('uploader (version 2)', () => {
  const outcome = (f: () => unknown): string => {
    try {
      f();
      return 'ok';
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      return err.reason;
    }
  };
  const withUploader = (raw: Raw[], version: number, name: string): Uint8Array => enc([...replace(raw, 5, u(5, version)), s(11, name)]);
  it('round-trips through both transfer messages; absent for the anonymous drop', () => {
    expect(decodeIngressTransfer(encodeIngressTransfer({ ...ingressObj, uploader: 'alice' }, LIMITS), LIMITS)).toEqual({ ...ingressObj, uploader: 'alice' });
    expect(decodeTransitTransfer(encodeTransitTransfer({ ...transitObj, uploader: 'bob_2' }, LIMITS), LIMITS)).toEqual({ ...transitObj, uploader: 'bob_2' });
    expect(decodeIngressTransfer(encodeIngressTransfer({ ...ingressObj, uploader: '' }, LIMITS), LIMITS)).not.toHaveProperty('uploader');
    expect(decodeIngressTransfer(withUploader(ingressRaw, 2, 'alice'), LIMITS).uploader).toBe('alice');
    expect(decodeTransitTransfer(withUploader(transitRaw, 2, 'alice'), LIMITS).uploader).toBe('alice');
  });
  it.each(['Alice', '1abc', 'a/b', '..', 'a'.repeat(33), 'al ice', 'alice\n', 'al\u00efce', '-x'])('refuses %j as bad-uploader, in both messages and in the encoders', (name) => {
    expect(outcome(() => decodeIngressTransfer(withUploader(ingressRaw, 2, name), LIMITS))).toBe('bad-uploader');
    expect(outcome(() => decodeTransitTransfer(withUploader(transitRaw, 2, name), LIMITS))).toBe('bad-uploader');
    expect(outcome(() => encodeIngressTransfer({ ...ingressObj, uploader: name }, LIMITS))).toBe('bad-uploader');
    expect(outcome(() => encodeTransitTransfer({ ...transitObj, uploader: name }, LIMITS))).toBe('bad-uploader');
  });
  it('a version-1 record cannot carry it (unknown-field); without it, version 1 is still read', () => {
    expect(outcome(() => decodeIngressTransfer(withUploader(ingressRaw, 1, 'alice'), LIMITS))).toBe('unknown-field');
    expect(outcome(() => decodeTransitTransfer(withUploader(transitRaw, 1, 'alice'), LIMITS))).toBe('unknown-field');
    expect(decodeIngressTransfer(enc(replace(ingressRaw, 5, u(5, 1))), LIMITS)).toEqual(ingressObj);
    expect(decodeAck(enc(replace(ackRaw, 1, u(1, 1))), LIMITS)).toEqual(ackObj);
  });
  it('field 10 of TransitTransfer (the ingress refusal) stays unknown there', () => {
    expect(outcome(() => decodeTransitTransfer(enc([...transitRaw, s(10, 'x')]), LIMITS))).toBe('unknown-field');
  });
});

describe('docs/protocol.md (every reason documented, as postfix check-postconf-undocumented)', () => {
  const doc = readFileSync(new URL('../../../docs/protocol.md', import.meta.url), 'utf8');
  it.each(PROTOCOL_REASONS.map((r) => [r]))('documents %s', (reason) => {
    expect(doc).toContain(`\`${reason}\``);
  });
});

describe('helpers', () => {
  it('isTimestamp accepts toISOString output and refuses near misses', () => {
    expect(isTimestamp(new Date(0).toISOString())).toBe(true);
    expect(isTimestamp('2000-02-29T00:00:00Z')).toBe(true);
    expect(isTimestamp('1900-02-29T00:00:00Z')).toBe(false);
    expect(isTimestamp('2026-04-31T00:00:00Z')).toBe(false);
    expect(isTimestamp('2026-11-22T06:21:32.123z')).toBe(false);
  });
  it('truncateUtf8 cuts between code points and cleans lone surrogates', () => {
    expect(truncateUtf8('a😀b', 4)).toBe('a');
    expect(truncateUtf8('a😀b', 5)).toBe('a😀');
    expect(truncateUtf8('é'.repeat(3), 5)).toBe('éé');
    expect(truncateUtf8('x\ud800', 10)).toBe('x\ufffd');
    expect(truncateUtf8('short', 1024)).toBe('short');
    const r = truncateUtf8('ü'.repeat(2000), BOUNDS.checkReasonMaxBytes);
    expect(Buffer.byteLength(r)).toBe(1024);
  });
});
