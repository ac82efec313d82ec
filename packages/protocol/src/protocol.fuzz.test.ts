/*
 * NAME
 *   protocol.fuzz.test - structure-aware fuzzing of the three decoders
 *
 * DESCRIPTION
 *   properties.test.ts feeds the decoders uniformly random bytes and
 *   byte-mutated valid records. Random bytes almost never get past the wire
 *   walker (a random tag is rarely a known field of the right wire type),
 *   so the semantic checks behind it are reached mostly through the
 *   mutations. This file fills that gap: it builds records that are
 *   well-formed protobuf on the wire, field by field, from the parts a
 *   hostile stage would use — known field numbers with right and wrong wire
 *   types, unknown and huge field numbers, duplicates, the other hop's
 *   fields, nested CheckResults, boundary varints (0, 1, 2^32+1, 2^53, 2^64-1),
 *   strings that are valid, overlong, invalid UTF-8, control and bidi
 *   characters, 31/32/33-byte digests, good and bad timestamps — and decodes
 *   them under the limits a stage actually runs with (maxNameBytes 1024, as
 *   in the default configuration, and the small maxFileSize of a tight
 *   policy).
 *
 *   The contract checked, 10,000 runs per decoder: the decoder returns a
 *   value that satisfies every documented rule, or throws a ProtocolError
 *   whose reason is one of PROTOCOL_REASONS and whose message is one line
 *   without control or format characters (it lands in logs). Nothing else
 *   is ever thrown, whatever the bytes.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BOUNDS,
  ID_PATTERN,
  PROTOCOL_REASONS,
  ProtocolError,
  decodeAck,
  decodeIngressTransfer,
  decodeTransitTransfer,
  encodeAck,
  encodeIngressTransfer,
  encodeTransitTransfer,
  isTimestamp,
  type Limits,
} from './index.js';

const RUNS = 10_000;
/** A stage's limits: the configuration default for names, a tight size policy. */
const STAGE: Limits = { maxRecordBytes: 64 * 1024, maxNameBytes: 1024, maxFileSize: 256 * 1024 * 1024 };

// ---------------------------------------------------------------------------
// Wire building blocks (no validation: a hostile peer's encoder)

function varint(v: bigint): number[] {
  const out: number[] = [];
  do {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v ? b | 0x80 : b);
  } while (v);
  return out;
}

const tag = (no: number, wt: number) => varint((BigInt(no) << 3n) | BigInt(wt));

/** A varint value a hostile peer would try: boundaries of every integer width. */
const varintValue = fc.oneof(
  fc.constantFrom(0n, 1n, 2n, 3n, 4n, 127n, 128n, 2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 32n + 1n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n),
  fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
  fc.nat().map(BigInt),
);

const utf8 = (s: string) => [...Buffer.from(s, 'utf8')];

/** Bytes for a length-delimited field: strings good and bad, digests, timestamps, ids, nested records. */
const payload: fc.Arbitrary<number[]> = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }).map(utf8) },
  { weight: 2, arbitrary: fc.stringMatching(/^[A-Za-z0-9_-]{1,70}$/).map(utf8) },
  { weight: 2, arbitrary: fc.constantFrom(31, 32, 33, 0, 64).chain((n) => fc.uint8Array({ minLength: n, maxLength: n })).map((b) => [...b]) },
  {
    weight: 2,
    arbitrary: fc
      .constantFrom(
        '2026-11-22T06:21:32.123Z',
        '2026-11-22T06:21:32Z',
        '2026-02-30T00:00:00Z',
        '2026-11-22T24:00:00Z',
        '2026-11-22T06:21:60Z',
        '2026-11-22T06:21:32+00:00',
        '2026-11-22T06:21:32.1234567890Z',
        '9999-12-31T23:59:59.999999999Z',
      )
      .map(utf8),
  },
  { weight: 2, arbitrary: fc.constantFrom('../../etc/passwd', 'a\0b', 'x\n{"level":"fatal"}', '\u001b[31m', 'inv\u202Efdp.exe', '\u009b', '\uFEFF').map(utf8) },
  // Invalid UTF-8: overlong, surrogates, truncated, above U+10FFFF, stray continuation bytes.
  { weight: 2, arbitrary: fc.constantFrom<number[]>([0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf4, 0x90, 0x80, 0x80], [0x80], [0xff, 0xfe]) },
  { weight: 1, arbitrary: fc.integer({ min: 1000, max: 1100 }).map((n) => Array<number>(n).fill(0x61)) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 60 }).map((b) => [...b]) },
);

type Field = number[];

/** One field of any wire type, with a field number from this schema, the other hops', or none. */
const field = (numbers: fc.Arbitrary<number>, nested: fc.Arbitrary<number[]> | null): fc.Arbitrary<Field> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.tuple(numbers, varintValue).map(([no, v]) => [...tag(no, 0), ...varint(v)]) },
    { weight: 5, arbitrary: fc.tuple(numbers, payload).map(([no, p]) => [...tag(no, 2), ...varint(BigInt(p.length)), ...p]) },
    ...(nested ? [{ weight: 3, arbitrary: nested.map((p) => [...tag(8, 2), ...varint(BigInt(p.length)), ...p]) }] : []),
    { weight: 1, arbitrary: fc.tuple(numbers, fc.uint8Array({ minLength: 8, maxLength: 8 })).map(([no, b]) => [...tag(no, 1), ...b]) },
    { weight: 1, arbitrary: fc.tuple(numbers, fc.uint8Array({ minLength: 4, maxLength: 4 })).map(([no, b]) => [...tag(no, 5), ...b]) },
    // Groups and the reserved wire types 6 and 7, which no Sluice message uses.
    { weight: 1, arbitrary: fc.tuple(numbers, fc.constantFrom(3, 4, 6, 7)).map(([no, wt]) => tag(no, wt)) },
  );

/** Field numbers: mostly the schema's (1-10), sometimes just past it, 0, or the largest legal ones. */
const fieldNumber = fc.oneof(
  { weight: 12, arbitrary: fc.integer({ min: 1, max: 10 }) },
  { weight: 1, arbitrary: fc.constantFrom(0, 11, 15, 16, 19000, 2 ** 29 - 1) },
);

/** A CheckResult body: fields 1-4 (and strays), as it would be nested in field 8. */
const checkResult = fc.array(field(fc.integer({ min: 0, max: 6 }), null), { maxLength: 6 }).map((fs) => fs.flat());

/** randomRecord - the version field most of the time (so decoding goes past bad-version), then 0-12 fields in any order. */
const randomRecord = (versionNo: number, nested: boolean): fc.Arbitrary<number[][]> =>
  fc
    .tuple(
      fc.oneof({ weight: 5, arbitrary: fc.constant<number[][]>([[...tag(versionNo, 0), 1]]) }, { weight: 1, arbitrary: fc.constant<number[][]>([]) }),
      fc.array(field(fieldNumber, nested ? checkResult : null), { maxLength: 12 }),
    )
    .map(([version, fields]) => [...version, ...fields]);

const str = (no: number, s: string | number[]) => {
  const b = typeof s === 'string' ? utf8(s) : s;
  return [...tag(no, 2), ...varint(BigInt(b.length)), ...b];
};
const int = (no: number, v: bigint) => [...tag(no, 0), ...varint(v)];
const goodId = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
const digest = fc.uint8Array({ minLength: 32, maxLength: 32 });
/** stamp - mostly a good timestamp, sometimes one that only looks like it. */
const stamp = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom('2026-11-22T06:21:32.123Z', '2026-11-22T06:21:32Z', '2024-02-29T23:59:59.999999999Z') },
  { weight: 1, arbitrary: fc.constantFrom('2026-02-30T00:00:00Z', '2026-11-22T24:00:00Z', '2026-11-22T06:21:60Z', '2026-11-22T06:21:32+00:00', '2026-11-22 06:21:32Z', '2026-11-22T06:21:32.Z') },
);

/** validFields - the fields of a valid record of each message, one array per field. */
const validFields = {
  IngressTransfer: fc
    .tuple(goodId, fc.string({ minLength: 1, maxLength: 60 }), fc.nat(), digest, stamp)
    .map(([id, name, size, sha, at]) => [str(1, id), str(2, name), int(3, BigInt(size)), str(4, [...sha]), int(5, 1n), str(6, at)]),
  TransitTransfer: fc
    .tuple(goodId, fc.string({ minLength: 1, maxLength: 60 }), fc.nat(), digest, fc.constantFrom(1n, 2n), fc.nat(4), stamp, stamp)
    .map(([id, name, size, sha, verdict, n, at, checkedAt]) => [
      str(1, id),
      str(2, name),
      int(3, BigInt(size)),
      str(4, [...sha]),
      int(5, 1n),
      str(6, at),
      int(7, verdict),
      ...Array.from({ length: n }, () => str(8, [...str(1, 'clamav'), ...int(2, 1n), ...str(3, 'OK'), ...str(4, 'x')])),
      str(9, checkedAt),
    ]),
  Ack: fc
    .tuple(goodId, digest, fc.constantFrom(1n, 2n, 3n))
    .map(([id, sha, status]) => [int(1, 1n), str(2, id), str(3, [...sha]), int(4, status), str(5, 'reason')]),
};

/** firstVarint - the first varint of a field (its tag) and its length in bytes. */
function firstVarint(b: number[]): [bigint, number] {
  let v = 0n;
  for (let i = 0; i < b.length; i++) {
    v |= BigInt(b[i]! & 0x7f) << BigInt(7 * i);
    if (b[i]! < 0x80) return [v, i + 1];
  }
  return [v, b.length];
}

type Edit = { kind: 'replace' | 'delete' | 'insert' | 'duplicate'; at: number; with: number[] };

/** mutatedValid - a valid record with 0-3 hostile edits, so the value checks (not only the walker) are reached. */
const mutatedValid = (fields: fc.Arbitrary<number[][]>, nested: boolean): fc.Arbitrary<number[][]> =>
  fc
    .tuple(
      fields,
      fc.array(
        fc.record({ kind: fc.constantFrom('replace', 'delete', 'insert', 'duplicate'), at: fc.nat(), with: field(fieldNumber, nested ? checkResult : null) }),
        { maxLength: 3 },
      ),
      fc.boolean(),
    )
    .map(([fs, edits, reverse]) => {
      const out = [...fs];
      for (const e of edits as Edit[]) {
        const at = out.length === 0 ? 0 : e.at % out.length;
        if (e.kind === 'delete') out.splice(at, 1);
        else if (e.kind === 'insert') out.splice(at, 0, e.with);
        else if (e.kind === 'duplicate' && out.length > 0) out.splice(at, 0, out[at]!);
        else if (e.kind === 'replace' && out.length > 0) {
          // The same field number with the new field's wire type and value.
          const [oldTag] = firstVarint(out[at]!);
          const [newTag, n] = firstVarint(e.with);
          out[at] = [...tag(Number(oldTag >> 3n), Number(newTag & 7n)), ...e.with.slice(n)];
        }
      }
      return reverse ? out.reverse() : out;
    });

/** record - the bytes of one record of `message`: random fields, or a valid one edited. */
const record = (message: keyof typeof validFields): fc.Arbitrary<Uint8Array> => {
  const nested = message === 'TransitTransfer';
  return fc
    .oneof(randomRecord(message === 'Ack' ? 1 : 5, nested), mutatedValid(validFields[message], nested))
    .map((fields) => Uint8Array.from(fields.flat()));
};

// ---------------------------------------------------------------------------
// The contract

const REASONS = new Set<string>(PROTOCOL_REASONS);
const utf8Bytes = (s: string) => Buffer.byteLength(s, 'utf8');
const wellFormed = (s: string) => !/[\uD800-\uDFFF]/u.test(s.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g, ''));

/** refusedProperly - a ProtocolError with a documented reason and a one-line, control-free message. */
function refusedProperly(err: unknown): void {
  if (!(err instanceof ProtocolError)) throw err;
  // Plain checks (not expect()): this runs for nearly every one of 30,000 inputs.
  if (!REASONS.has(err.reason)) throw new Error(`undocumented reason ${err.reason}`);
  if (/\p{Cc}|\p{Cf}|\p{Zl}|\p{Zp}/u.test(err.message)) throw new Error(`message with control or format characters: ${JSON.stringify(err.message)}`);
  if (err.field !== undefined && typeof err.field !== 'string') throw new Error('field is not a string');
}

/** must - a cheap assertion (expect() would dominate the run time of 30,000 runs). */
function must(ok: boolean, what: string, value?: unknown): void {
  if (!ok) throw new Error(`${what}${value === undefined ? '' : `: ${JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? [...v] : v))}`}`);
}

/** roundTrips - the encoder (which validates) accepts the value, and it decodes back to the same. */
function roundTrips<T>(value: T, encode: (v: T, l: Limits) => Uint8Array, decode: (b: Uint8Array, l: Limits) => T): void {
  expect(decode(encode(value, STAGE), STAGE)).toEqual(value);
}

/** transferRules - the documented rules for fields 1-6 of either transfer message. */
function transferRules(t: { id: string; name: string; size: number; sha256: Uint8Array; receivedAt: string }): void {
  must(ID_PATTERN.test(t.id), 'id', t.id);
  const nameBytes = utf8Bytes(t.name);
  must(nameBytes >= 1 && nameBytes <= STAGE.maxNameBytes && wellFormed(t.name), 'name', t.name);
  must(Number.isSafeInteger(t.size) && t.size >= 0 && t.size <= STAGE.maxFileSize, 'size', t.size);
  must(t.sha256 instanceof Uint8Array && t.sha256.length === BOUNDS.sha256Bytes, 'sha256', t.sha256);
  must(isTimestamp(t.receivedAt), 'receivedAt', t.receivedAt);
}

describe('structure-aware fuzzing under a stage\'s limits (10,000 runs each)', () => {
  it('decodeIngressTransfer: a value obeying every rule, or a documented ProtocolError', () => {
    fc.assert(
      fc.property(record('IngressTransfer'), (bytes) => {
        let t;
        try {
          t = decodeIngressTransfer(bytes, STAGE);
        } catch (err) {
          refusedProperly(err);
          return;
        }
        transferRules(t);
        must(utf8Bytes(t.refusal) <= BOUNDS.refusalMaxBytes, 'refusal', t.refusal);
        // No verdict can ride along: the decoded object has exactly these members.
        must(Object.keys(t).sort().join() === 'id,name,receivedAt,refusal,sha256,size', 'members', Object.keys(t));
        roundTrips(t, encodeIngressTransfer, decodeIngressTransfer);
      }),
      { numRuns: RUNS },
    );
  });

  it('decodeTransitTransfer: a value obeying every rule, or a documented ProtocolError', () => {
    fc.assert(
      fc.property(record('TransitTransfer'), (bytes) => {
        let t;
        try {
          t = decodeTransitTransfer(bytes, STAGE);
        } catch (err) {
          refusedProperly(err);
          return;
        }
        transferRules(t);
        must(t.verdict === 'accepted' || t.verdict === 'rejected', 'verdict', t.verdict);
        must(t.checks.length <= BOUNDS.maxChecks, 'checks', t.checks.length);
        for (const k of t.checks) {
          must(['pass', 'fail', 'error'].includes(k.outcome), 'outcome', k);
          must(utf8Bytes(k.name) >= 1 && utf8Bytes(k.name) <= BOUNDS.checkNameMaxBytes, 'check name', k);
          must(utf8Bytes(k.reason) <= BOUNDS.checkReasonMaxBytes && utf8Bytes(k.engine) <= BOUNDS.engineMaxBytes, 'check text', k);
        }
        must(isTimestamp(t.checkedAt), 'checkedAt', t.checkedAt);
        roundTrips(t, encodeTransitTransfer, decodeTransitTransfer);
      }),
      { numRuns: RUNS },
    );
  });

  it('decodeAck: a value obeying every rule, or a documented ProtocolError', () => {
    fc.assert(
      fc.property(record('Ack'), (bytes) => {
        let a;
        try {
          a = decodeAck(bytes, STAGE);
        } catch (err) {
          refusedProperly(err);
          return;
        }
        must(ID_PATTERN.test(a.id), 'id', a.id);
        must(a.sha256.length === BOUNDS.sha256Bytes, 'sha256', a.sha256);
        must(['delivered', 'retry', 'refused'].includes(a.status), 'status', a.status);
        must(utf8Bytes(a.reason) <= BOUNDS.ackReasonMaxBytes, 'reason', a.reason);
        roundTrips(a, encodeAck, decodeAck);
      }),
      { numRuns: RUNS },
    );
  });

  it('the generators reach the semantic checks, not only the wire walker', () => {
    // Guard against a fuzzer that only ever exercises one refusal: sample and
    // require a spread of reasons (and some successes) from each decoder.
    const spread = (arb: fc.Arbitrary<Uint8Array>, decode: (b: Uint8Array) => unknown) => {
      const seen = new Set<string>();
      for (const bytes of fc.sample(arb, { numRuns: 3_000, seed: 8 })) {
        try {
          decode(bytes);
          seen.add('ok');
        } catch (err) {
          if (err instanceof ProtocolError) seen.add(err.reason);
        }
      }
      return seen;
    };
    const ingress = spread(record('IngressTransfer'), (b) => decodeIngressTransfer(b, STAGE));
    const transit = spread(record('TransitTransfer'), (b) => decodeTransitTransfer(b, STAGE));
    const ack = spread(record('Ack'), (b) => decodeAck(b, STAGE));
    const common = ['ok', 'bad-wire-format', 'wrong-wire-type', 'unknown-field', 'duplicate-field', 'missing-field', 'bad-version', 'bad-id', 'bad-sha256-length'];
    for (const [seen, extra] of [
      [ingress, ['bad-utf8', 'bad-timestamp', 'string-too-long', 'size-over-policy']],
      [transit, ['bad-utf8', 'bad-timestamp', 'unknown-enum', 'unspecified-enum']],
      [ack, ['unknown-enum', 'unspecified-enum']],
    ] as const) {
      for (const r of [...common, ...extra]) expect([...seen], r).toContain(r);
    }
  });
});
