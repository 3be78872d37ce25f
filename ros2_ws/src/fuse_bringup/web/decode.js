// Decoding of what the fuse-ros viewer sends: foxglove.CompressedImage (protobuf) and JSON channels.
// No dependencies, so the same module runs in the browser and under node (tests/web).

const utf8 = new TextDecoder();

// Protobuf wire format: a message is a run of (field number, wire type) keys and values.
// Returns Map<field number, value[]>: varints as Number, length-delimited fields as Uint8Array.
export function protobufFields(bytes) {
  const fields = new Map();
  let pos = 0;
  const varint = () => {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (pos >= bytes.length) throw new Error("protobuf: truncated varint");
      const b = bytes[pos++];
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 128;
      if (scale > 2 ** 63) throw new Error("protobuf: varint too long");
    }
  };
  while (pos < bytes.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    let value;
    if (wire === 0) value = varint();
    else if (wire === 1) { value = bytes.subarray(pos, pos + 8); pos += 8; }
    else if (wire === 5) { value = bytes.subarray(pos, pos + 4); pos += 4; }
    else if (wire === 2) {
      const n = varint();
      if (pos + n > bytes.length) throw new Error(`protobuf: field ${field} runs past the end`);
      value = bytes.subarray(pos, pos + n);
      pos += n;
    } else throw new Error(`protobuf: unsupported wire type ${wire} (field ${field})`);
    if (pos > bytes.length) throw new Error(`protobuf: field ${field} runs past the end`);
    if (!fields.has(field)) fields.set(field, []);
    fields.get(field).push(value);
  }
  return fields;
}

const last = (fields, n) => (fields.get(n) || []).at(-1);

// foxglove.CompressedImage: timestamp = 1 (seconds = 1, nanos = 2), data = 2, format = 3, frame_id = 4.
export function decodeCompressedImage(bytes) {
  const f = protobufFields(bytes);
  const data = last(f, 2);
  if (!(data instanceof Uint8Array) || data.length === 0) throw new Error("CompressedImage without data");
  const ts = last(f, 1);
  let stampNs = null;
  if (ts instanceof Uint8Array) {
    const t = protobufFields(ts);
    stampNs = (last(t, 1) || 0) * 1e9 + (last(t, 2) || 0);
  }
  const format = last(f, 3);
  const frame = last(f, 4);
  return {
    data,
    format: format ? utf8.decode(format) : "",
    frameId: frame ? utf8.decode(frame) : "",
    stampNs,
  };
}

export function decodeJson(bytes) {
  return JSON.parse(utf8.decode(bytes));
}

// The image types a browser decodes itself, by the CompressedImage format string.
export function mimeType(format) {
  const f = format.toLowerCase();
  if (f.includes("jpeg") || f.includes("jpg")) return "image/jpeg";
  if (f.includes("png")) return "image/png";
  if (f.includes("webp")) return "image/webp";
  throw new Error(`unsupported image format ${JSON.stringify(format)}`);
}
