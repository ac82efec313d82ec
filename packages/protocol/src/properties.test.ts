/*
 * NAME
 *   properties.test - fast-check properties of every codec
 *
 * DESCRIPTION
 *   1. A decoder given any bytes returns a valid object or throws a
 *      ProtocolError; never anything else (no TypeError from deep inside
 *      protobufjs, no RangeError, no hang). "Valid" is checked by
 *      re-encoding: the encoder validates, and encode(decode(x)) must decode
 *      to the same object.
 *   2. The same for valid records with random mutations (byte flips,
 *      insertions, deletions, truncation), which reach much deeper into the
 *      walker than uniformly random bytes do.
 *   3. encode -> decode is the identity on arbitrary valid objects, and the
 *      encoding is canonical (decode -> encode gives the same bytes).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ProtocolError,
  decodeAck,
  decodeIngressTransfer,
  decodeTransitTransfer,
  encodeAck,
  encodeIngressTransfer,
  encodeTransitTransfer,
  truncateUtf8,
  type Ack,
  type CheckResult,
  type IngressTransfer,
  type Limits,
  type TransitTransfer,
} from './index.js';

const RUNS = 10_000;
const LIMITS: Limits = { maxRecordBytes: 64 * 1024, maxNameBytes: 4096, maxFileSize: Number.MAX_SAFE_INTEGER };

interface AnyCodec {
  name: string;
  decode(buf: Uint8Array, limits: Limits): unknown;
  encode(obj: never, limits: Limits): Uint8Array;
}

const CODECS: AnyCodec[] = [
  { name: 'IngressTransfer', decode: decodeIngressTransfer, encode: encodeIngressTransfer },
  { name: 'TransitTransfer', decode: decodeTransitTransfer, encode: encodeTransitTransfer },
  { name: 'Ack', decode: decodeAck, encode: encodeAck },
];

// ---------------------------------------------------------------------------
// Arbitraries for valid objects

/** text - any well-formed Unicode (control, bidi, astral...), bounded in UTF-8 bytes. */
const text = (minBytes: 0 | 1, maxBytes: number, maxLength: number) =>
  fc
    .string({ unit: 'binary', minLength: minBytes, maxLength })
    .map((s) => truncateUtf8(s, maxBytes))
    .filter((s) => s.length >= minBytes);

const id = fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/);
const sha256 = fc.uint8Array({ minLength: 32, maxLength: 32 });
const size = fc.oneof(fc.constant(0), fc.nat(), fc.maxSafeNat(), fc.constant(Number.MAX_SAFE_INTEGER));
const timestamp = fc
  .tuple(
    fc.date({ min: new Date('0000-01-01T00:00:00.000Z'), max: new Date('9999-12-31T23:59:59.999Z'), noInvalidDate: true }),
    fc.stringMatching(/^(\.[0-9]{1,9})?$/),
  )
  .map(([d, frac]) => `${d.toISOString().slice(0, 19)}${frac}Z`);

const base = fc.record({
  id,
  name: text(1, 4096, 1500),
  size,
  sha256,
  receivedAt: timestamp,
});

const ingress: fc.Arbitrary<IngressTransfer> = fc
  .tuple(base, text(0, 1024, 300))
  .map(([b, refusal]) => ({ ...b, refusal }));

const check: fc.Arbitrary<CheckResult> = fc.record({
  name: text(1, 256, 80),
  outcome: fc.constantFrom('pass', 'fail', 'error'),
  reason: text(0, 1024, 300),
  engine: text(0, 256, 80),
});

const transit: fc.Arbitrary<TransitTransfer> = fc
  .tuple(base, fc.constantFrom('accepted', 'rejected'), fc.array(check, { maxLength: 64 }), timestamp)
  .map(([base, verdict, checks, checkedAt]) => ({ ...base, verdict, checks, checkedAt }));

const ack: fc.Arbitrary<Ack> = fc.record({
  id,
  sha256,
  status: fc.constantFrom('delivered', 'retry', 'refused'),
  reason: text(0, 1024, 300),
});

const VALID: Record<string, fc.Arbitrary<unknown>> = { IngressTransfer: ingress, TransitTransfer: transit, Ack: ack };

// ---------------------------------------------------------------------------

/** totalDecode - assert the decoder's contract on one input. */
function totalDecode(codec: AnyCodec, bytes: Uint8Array): void {
  let value: unknown;
  try {
    value = codec.decode(bytes, LIMITS);
  } catch (err) {
    if (!(err instanceof ProtocolError)) throw err;
    return;
  }
  // Valid: the encoder (which validates) accepts it, and it survives a round trip.
  const again = codec.encode(value as never, { ...LIMITS, maxRecordBytes: 1 << 20 });
  expect(codec.decode(again, { ...LIMITS, maxRecordBytes: 1 << 20 })).toEqual(value);
}

type Mutation = { kind: 'flip' | 'set' | 'insert' | 'delete'; at: number; byte: number } | { kind: 'truncate'; at: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constantFrom('flip', 'set', 'insert', 'delete'), at: fc.nat(), byte: fc.nat(255) }),
  fc.record({ kind: fc.constant('truncate'), at: fc.nat() }),
);

/** mutate - apply mutations in order; positions wrap around the current length. */
function mutate(bytes: Uint8Array, mutations: Mutation[]): Uint8Array {
  const out = [...bytes];
  for (const mu of mutations) {
    const at = out.length === 0 ? 0 : mu.at % (out.length + 1);
    if (mu.kind === 'truncate') out.length = at;
    else if (mu.kind === 'insert') out.splice(at, 0, mu.byte);
    else if (at < out.length) {
      if (mu.kind === 'delete') out.splice(at, 1);
      else if (mu.kind === 'set') out[at] = mu.byte;
      else out[at] = out[at]! ^ (1 << (mu.byte & 7));
    }
  }
  return Uint8Array.from(out);
}

describe.each(CODECS)('$name', (codec) => {
  const valid = VALID[codec.name]!;

  it('decode(arbitrary bytes) returns a valid object or throws ProtocolError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => totalDecode(codec, bytes)),
      { numRuns: RUNS },
    );
  });

  it('decode(mutated valid record) returns a valid object or throws ProtocolError', () => {
    fc.assert(
      fc.property(valid, fc.array(mutation, { minLength: 1, maxLength: 4 }), (obj, mutations) => {
        const bytes = codec.encode(obj as never, { ...LIMITS, maxRecordBytes: 1 << 20 });
        totalDecode(codec, mutate(bytes, mutations));
      }),
      { numRuns: RUNS / 2 },
    );
  });

  it('encode -> decode is the identity, and the encoding is canonical', () => {
    fc.assert(
      fc.property(valid, (obj) => {
        let bytes: Uint8Array;
        let limits: Limits = LIMITS;
        try {
          bytes = codec.encode(obj as never, limits);
        } catch (err) {
          // Only the record cap may refuse a valid object (64 long checks exceed 64 KiB).
          expect((err as ProtocolError).reason).toBe('record-too-large');
          limits = { ...LIMITS, maxRecordBytes: 1 << 20 };
          bytes = codec.encode(obj as never, limits);
        }
        const back = codec.decode(bytes, limits);
        expect(back).toEqual(obj);
        expect(Buffer.from(codec.encode(back as never, limits)).equals(Buffer.from(bytes))).toBe(true);
      }),
      { numRuns: 2_000 },
    );
  });
});
