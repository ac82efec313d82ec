/*
 * NAME
 *   schema - load sluice.proto by reflection and derive the wire tables
 *
 * SYNOPSIS
 *   import { types, wireSchemas, PROTO_PATH } from './schema.js';
 *   types.IngressTransfer.decode(bytes);           // protobufjs reflection Type
 *   wireSchemas.IngressTransfer.byNumber.get(4);   // { name: 'sha256', kind: 'bytes', ... }
 *
 * DESCRIPTION
 *   sluice.proto is the single source of truth. It is read once, at module
 *   load, from beside the package (`../sluice.proto` relative to this module,
 *   which is the same file from src/ under vitest and from dist/ under node).
 *   No generated code is committed, so nothing can drift from the schema.
 *
 *   The wire tables that the strict walker (wire.ts) checks records against
 *   are derived from the same reflection types, not written by hand: a field
 *   added to the .proto is known to protobufjs and to the walker at once.
 *
 * DIAGNOSTICS
 *   A missing or unparsable sluice.proto, or a schema using a field type the
 *   walker does not support, throws at import time: a broken install, not
 *   bad input. Nothing should catch it.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/** PROTO_PATH - absolute path of the sluice.proto this module loaded. */
export const PROTO_PATH = fileURLToPath(new URL('../sluice.proto', import.meta.url));

/** The protobuf package of every message. */
export const PROTO_PACKAGE = 'sluice.v1';

export type FieldKind = 'string' | 'bytes' | 'uint32' | 'uint64' | 'enum' | 'message';

export interface WireField {
  /** camelCase name as protobufjs exposes it (received_at -> receivedAt). */
  readonly name: string;
  readonly number: number;
  readonly kind: FieldKind;
  /** 0 (varint) or 2 (length-delimited): the only wire types the schema uses. */
  readonly wireType: 0 | 2;
  readonly repeated: boolean;
  /** For kind 'message': the nested message's table. */
  readonly message: WireSchema | undefined;
}

export interface WireSchema {
  /** Message name without package, e.g. 'CheckResult'. */
  readonly name: string;
  readonly byNumber: ReadonlyMap<number, WireField>;
  /** The field named 'version', if this message has one (top-level messages do). */
  readonly versionField: number | undefined;
}

const MESSAGE_NAMES = ['IngressTransfer', 'TransitTransfer', 'CheckResult', 'Ack'] as const;
export type MessageName = (typeof MESSAGE_NAMES)[number];

/** loadRoot - parse sluice.proto into a resolved protobufjs Root. */
function loadRoot(): protobuf.Root {
  const text = readFileSync(PROTO_PATH, 'utf8');
  const { root } = protobuf.parse(text, { keepCase: false });
  root.resolveAll();
  return root;
}

/** fieldKind - map a reflected field to the walker's kind; refuse anything the walker cannot check. */
function fieldKind(type: protobuf.Type, field: protobuf.Field): FieldKind {
  if (field.map || field.partOf) {
    throw new Error(`sluice.proto: ${type.name}.${field.name}: maps and oneofs are not supported by the strict walker`);
  }
  if (field.resolvedType instanceof protobuf.Enum) return 'enum';
  if (field.resolvedType instanceof protobuf.Type) return 'message';
  switch (field.type) {
    case 'string':
    case 'bytes':
    case 'uint32':
    case 'uint64':
      return field.type;
    default:
      throw new Error(`sluice.proto: ${type.name}.${field.name}: type ${field.type} is not supported by the strict walker`);
  }
}

/** buildWireSchema - the walker's table for one reflected message type (recursively). */
function buildWireSchema(type: protobuf.Type, depth = 0): WireSchema {
  if (depth > 4) throw new Error(`sluice.proto: ${type.name}: nesting too deep (recursive message?)`);
  const byNumber = new Map<number, WireField>();
  let versionField: number | undefined;
  for (const field of type.fieldsArray) {
    const kind = fieldKind(type, field);
    if (field.repeated && kind !== 'message') {
      // Packed scalars would need a second accepted wire type; none exist yet.
      throw new Error(`sluice.proto: ${type.name}.${field.name}: repeated scalars are not supported by the strict walker`);
    }
    const message = kind === 'message' ? buildWireSchema(field.resolvedType as protobuf.Type, depth + 1) : undefined;
    byNumber.set(field.id, {
      name: field.name,
      number: field.id,
      kind,
      wireType: kind === 'string' || kind === 'bytes' || kind === 'message' ? 2 : 0,
      repeated: field.repeated,
      message,
    });
    if (field.name === 'version') versionField = field.id;
  }
  return { name: type.name, byNumber, versionField };
}

const root = loadRoot();

/** types - the protobufjs reflection Types, by message name. */
export const types: Readonly<Record<MessageName, protobuf.Type>> = Object.freeze(
  Object.fromEntries(MESSAGE_NAMES.map((n) => [n, root.lookupType(`${PROTO_PACKAGE}.${n}`)])) as Record<
    MessageName,
    protobuf.Type
  >,
);

/** enums - the reflected enums: name -> number, as in the .proto. */
export const enums = Object.freeze({
  Verdict: root.lookupEnum(`${PROTO_PACKAGE}.Verdict`).values,
  Outcome: root.lookupEnum(`${PROTO_PACKAGE}.Outcome`).values,
  AckStatus: root.lookupEnum(`${PROTO_PACKAGE}.AckStatus`).values,
});

/** wireSchemas - the walker's tables, by message name. */
export const wireSchemas: Readonly<Record<MessageName, WireSchema>> = Object.freeze(
  Object.fromEntries(MESSAGE_NAMES.map((n) => [n, buildWireSchema(types[n])])) as Record<MessageName, WireSchema>,
);
