/**
 * tinyrpc framing in TypeScript, for the demo server and client (the plugin parses the same bytes
 * in AssemblyScript). See ../assembly/index.ts for the frame layout.
 */
export const KIND_REQUEST = 1;
export const KIND_RESPONSE = 2;

export interface Frame {
  kind: number;
  id: number;
  /** Request: method. */
  method?: string;
  /** Response: 0 ok, 1 bad request, 2 server error. */
  status?: number;
  body: Buffer;
}

export function encodeRequest(id: number, method: string, arg: Buffer): Buffer {
  const m = Buffer.from(method, 'utf8');
  const head = Buffer.alloc(4 + 2 + 1 + 4 + 1);
  head.writeUInt32BE(7 + 1 + m.length + arg.length, 0);
  head.write('TR', 4, 'latin1');
  head.writeUInt8(KIND_REQUEST, 6);
  head.writeUInt32BE(id, 7);
  head.writeUInt8(m.length, 11);
  return Buffer.concat([head, m, arg]);
}

export function encodeResponse(id: number, status: number, result: Buffer): Buffer {
  const head = Buffer.alloc(4 + 2 + 1 + 4 + 1);
  head.writeUInt32BE(7 + 1 + result.length, 0);
  head.write('TR', 4, 'latin1');
  head.writeUInt8(KIND_RESPONSE, 6);
  head.writeUInt32BE(id, 7);
  head.writeUInt8(status, 11);
  return Buffer.concat([head, result]);
}

/** Splits complete frames off the front of `buf`; returns them and the leftover bytes. */
export function takeFrames(buf: Buffer): { frames: Frame[]; rest: Buffer } {
  const frames: Frame[] = [];
  let o = 0;
  while (buf.length - o >= 4) {
    const len = buf.readUInt32BE(o);
    if (buf.length - o - 4 < len) break;
    const f = buf.subarray(o + 4, o + 4 + len);
    if (f.toString('latin1', 0, 2) !== 'TR') throw new Error('tinyrpc: bad magic');
    const kind = f.readUInt8(2);
    const id = f.readUInt32BE(3);
    if (kind === KIND_REQUEST) {
      const ml = f.readUInt8(7);
      frames.push({ kind, id, method: f.toString('utf8', 8, 8 + ml), body: f.subarray(8 + ml) });
    } else {
      frames.push({ kind, id, status: f.readUInt8(7), body: f.subarray(8) });
    }
    o += 4 + len;
  }
  return { frames, rest: buf.subarray(o) };
}
