/**
 * @module tokens/protobuf
 * The few protobuf wire-format pieces the SPIFFE Workload API messages need: writing strings and
 * bytes fields, and reading any message into its fields (varint, 64-bit, length-delimited,
 * 32-bit). Hand-written so the Workload API client carries no gRPC/protobuf dependency.
 */

export const WIRE = { varint: 0, fixed64: 1, bytes: 2, fixed32: 5 } as const;

export interface Field {
  number: number;
  wireType: number;
  /** varint / fixed values as bigint; length-delimited as bytes. */
  value: bigint | Buffer;
}

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}

/** One length-delimited field (string, bytes or an embedded message). */
export function bytesField(number: number, value: string | Uint8Array): Buffer {
  const data = typeof value === 'string' ? Buffer.from(value, 'utf8') : Buffer.from(value);
  return Buffer.concat([varint((number << 3) | WIRE.bytes), varint(data.length), data]);
}

export class ProtobufError extends Error {
  override name = 'ProtobufError';
}

function readVarint(buf: Buffer, pos: number): [bigint, number] {
  let result = 0n;
  let shift = 0n;
  for (;;) {
    if (pos >= buf.length) throw new ProtobufError('truncated varint');
    const b = buf[pos++]!;
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return [result, pos];
    shift += 7n;
    if (shift > 63n) throw new ProtobufError('varint too long');
  }
}

/** Every field of a message, in wire order (repeated fields appear once per element). */
export function readFields(buf: Buffer): Field[] {
  const fields: Field[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const [tag, afterTag] = readVarint(buf, pos);
    pos = afterTag;
    const number = Number(tag >> 3n);
    const wireType = Number(tag & 7n);
    if (number === 0) throw new ProtobufError('field number 0');
    switch (wireType) {
      case WIRE.varint: {
        const [v, next] = readVarint(buf, pos);
        fields.push({ number, wireType, value: v });
        pos = next;
        break;
      }
      case WIRE.fixed64:
        if (pos + 8 > buf.length) throw new ProtobufError('truncated fixed64');
        fields.push({ number, wireType, value: buf.readBigUInt64LE(pos) });
        pos += 8;
        break;
      case WIRE.fixed32:
        if (pos + 4 > buf.length) throw new ProtobufError('truncated fixed32');
        fields.push({ number, wireType, value: BigInt(buf.readUInt32LE(pos)) });
        pos += 4;
        break;
      case WIRE.bytes: {
        const [len, next] = readVarint(buf, pos);
        const end = next + Number(len);
        if (end > buf.length) throw new ProtobufError('truncated length-delimited field');
        fields.push({ number, wireType, value: buf.subarray(next, end) });
        pos = end;
        break;
      }
      default:
        throw new ProtobufError(`unsupported wire type ${wireType}`);
    }
  }
  return fields;
}

/** The length-delimited values of field `number` (all of them: repeated fields). */
export function bytesOf(fields: Field[], number: number): Buffer[] {
  return fields.filter((f) => f.number === number && f.wireType === WIRE.bytes).map((f) => f.value as Buffer);
}

export function stringOf(fields: Field[], number: number): string {
  const last = bytesOf(fields, number).at(-1);
  return last ? last.toString('utf8') : '';
}
