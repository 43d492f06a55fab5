/**
 * A small AMQP 0-9-1 client for the tests (no AMQP library is installed): the connection handshake
 * (PLAIN), channels, queue declare, publish with headers, get, consume/deliver/ack, and close, written
 * from the 0-9-1 specification. Loopback only. Not a general client: one waiter per method at a time.
 */

import net from 'node:net';

const FRAME_END = 0xce;

export const shortstr = (s: string): Buffer => Buffer.concat([Buffer.from([Buffer.byteLength(s)]), Buffer.from(s)]);
export function longstr(s: string | Buffer): Buffer {
  const b = typeof s === 'string' ? Buffer.from(s) : s;
  const n = Buffer.alloc(4);
  n.writeUInt32BE(b.length);
  return Buffer.concat([n, b]);
}
const u8 = (v: number): Buffer => Buffer.from([v]);
function u16(v: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(v);
  return b;
}
function u64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(v));
  return b;
}

/** A field table of string ('S') and boolean ('t') values, or nested tables ('F'). */
export interface Table {
  [key: string]: string | boolean | Table;
}
export function table(t: Table): Buffer {
  const parts: Buffer[] = [];
  for (const [k, v] of Object.entries(t)) {
    parts.push(shortstr(k));
    if (typeof v === 'string') parts.push(Buffer.from('S'), longstr(v));
    else if (typeof v === 'boolean') parts.push(Buffer.from('t'), u8(v ? 1 : 0));
    else parts.push(Buffer.from('F'), table(v));
  }
  return longstr(Buffer.concat(parts));
}

export function frame(type: number, channel: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(7);
  head[0] = type;
  head.writeUInt16BE(channel, 1);
  head.writeUInt32BE(payload.length, 3);
  return Buffer.concat([head, payload, u8(FRAME_END)]);
}

export function method(channel: number, classId: number, methodId: number, args: Buffer = Buffer.alloc(0)): Buffer {
  return frame(1, channel, Buffer.concat([u16(classId), u16(methodId), args]));
}

interface Frame {
  type: number;
  channel: number;
  payload: Buffer;
}

export class AmqpClient {
  private buf = Buffer.alloc(0);
  private frames: Frame[] = [];
  private wake: (() => void) | undefined;
  closed = false;

  private constructor(readonly sock: net.Socket) {
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      while (this.buf.length >= 8 && this.buf.length >= 8 + this.buf.readUInt32BE(3)) {
        const size = this.buf.readUInt32BE(3);
        this.frames.push({ type: this.buf[0], channel: this.buf.readUInt16BE(1), payload: this.buf.subarray(7, 7 + size) });
        this.buf = this.buf.subarray(8 + size);
      }
      this.wake?.();
    });
    sock.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    sock.on('error', () => undefined);
  }

  /** Connects and logs in; rejects with the server's Connection.Close text when refused. */
  static async connect(port: number, opts: { user?: string; password?: string; vhost?: string } = {}): Promise<AmqpClient> {
    const sock = net.connect({ host: '127.0.0.1', port });
    await new Promise<void>((resolve, reject) => {
      sock.once('connect', () => resolve());
      sock.once('error', reject);
    });
    const c = new AmqpClient(sock);
    sock.write(Buffer.from('AMQP\x00\x00\x09\x01', 'latin1'));
    await c.expect(0, 10, 10); // Connection.Start
    const props = table({ product: 'riptide-test', capabilities: { authentication_failure_close: true } });
    const sasl = `\0${opts.user ?? 'guest'}\0${opts.password ?? 'guest'}`;
    c.send(method(0, 10, 11, Buffer.concat([props, shortstr('PLAIN'), longstr(sasl), shortstr('en_US')])));
    const tune = await c.expect(0, 10, 30);
    c.send(method(0, 10, 31, Buffer.concat([tune.subarray(4, 6), tune.subarray(6, 10), u16(0)])));
    c.send(method(0, 10, 40, Buffer.concat([shortstr(opts.vhost ?? '/'), shortstr(''), u8(0)])));
    await c.expect(0, 10, 41);
    return c;
  }

  send(b: Buffer): void {
    this.sock.write(b);
  }

  /** The next frame on `channel` (method, header or body), waiting up to `timeoutMs`. */
  async next(channel: number, timeoutMs = 10_000): Promise<Frame> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const i = this.frames.findIndex((f) => f.channel === channel || (f.type === 1 && f.channel === 0 && f.payload.readUInt16BE(0) === 10 && f.payload.readUInt16BE(2) === 50));
      if (i >= 0) return this.frames.splice(i, 1)[0];
      if (this.closed) throw new Error('connection closed');
      if (Date.now() > until) throw new Error(`no frame on channel ${channel} after ${timeoutMs} ms`);
      await new Promise<void>((r) => {
        this.wake = r;
        setTimeout(r, 50);
      });
      this.wake = undefined;
    }
  }

  /** The next method on `channel`: its arguments if it is class.method, else an error (Channel/Connection.Close text). */
  async expect(channel: number, classId: number, methodId: number): Promise<Buffer> {
    const f = await this.next(channel);
    if (f.type !== 1) throw new Error(`expected a method, got frame type ${f.type}`);
    const [k, m] = [f.payload.readUInt16BE(0), f.payload.readUInt16BE(2)];
    if (k === classId && m === methodId) return f.payload;
    if ((k === 20 && m === 40) || (k === 10 && m === 50)) {
      const code = f.payload.readUInt16BE(4);
      const text = f.payload.subarray(7, 7 + f.payload[6]).toString();
      this.send(method(f.channel, k, m + 1)); // Close-Ok
      throw new AmqpError(code, text);
    }
    throw new Error(`expected ${classId}.${methodId}, got ${k}.${m}`);
  }

  async openChannel(ch: number): Promise<void> {
    this.send(method(ch, 20, 10, shortstr('')));
    await this.expect(ch, 20, 11);
  }

  async declareQueue(ch: number, queue: string, opts: { passive?: boolean } = {}): Promise<void> {
    this.send(method(ch, 50, 10, Buffer.concat([u16(0), shortstr(queue), u8(opts.passive ? 1 : 0), table({})])));
    await this.expect(ch, 50, 11);
  }

  publish(ch: number, exchange: string, routingKey: string, body: string, headers: Table = {}): void {
    const flags = Object.keys(headers).length > 0 ? 0x8000 | 0x2000 : 0x8000;
    const props = Buffer.concat([shortstr('text/plain'), ...(flags & 0x2000 ? [table(headers)] : [])]);
    const header = Buffer.concat([u16(60), u16(0), u64(Buffer.byteLength(body)), u16(flags), props]);
    this.send(Buffer.concat([method(ch, 60, 40, Buffer.concat([u16(0), shortstr(exchange), shortstr(routingKey), u8(0)])), frame(2, ch, header), frame(3, ch, Buffer.from(body))]));
  }

  /** Basic.Get: the body, or undefined for Get-Empty. */
  async get(ch: number, queue: string): Promise<string | undefined> {
    this.send(method(ch, 60, 70, Buffer.concat([u16(0), shortstr(queue), u8(1)])));
    const f = await this.next(ch);
    const m = f.payload.readUInt16BE(2);
    if (m === 72) return undefined;
    if (m !== 71) throw new Error(`Basic.Get answered by 60.${m}`);
    await this.next(ch); // content header
    return (await this.next(ch)).payload.toString();
  }

  async consume(ch: number, queue: string, tag: string): Promise<void> {
    this.send(method(ch, 60, 20, Buffer.concat([u16(0), shortstr(queue), shortstr(tag), u8(0), table({})])));
    await this.expect(ch, 60, 21);
  }

  /** Waits for a Basic.Deliver and its body; acks it. */
  async deliverAndAck(ch: number): Promise<string> {
    const d = await this.expect(ch, 60, 60);
    const tagLen = d[4];
    const deliveryTag = Number(d.readBigUInt64BE(5 + tagLen));
    await this.next(ch);
    const body = (await this.next(ch)).payload.toString();
    this.send(method(ch, 60, 80, Buffer.concat([u64(deliveryTag), u8(0)])));
    return body;
  }

  async closeChannel(ch: number): Promise<void> {
    this.send(method(ch, 20, 40, Buffer.concat([u16(200), shortstr('bye'), u16(0), u16(0)])));
    await this.expect(ch, 20, 41);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.send(method(0, 10, 50, Buffer.concat([u16(200), shortstr('bye'), u16(0), u16(0)])));
    await this.expect(0, 10, 51).catch(() => undefined);
    this.sock.end();
    await new Promise<void>((r) => (this.closed ? r() : this.sock.once('close', () => r())));
  }
}

export class AmqpError extends Error {
  constructor(readonly code: number, text: string) {
    super(`${code} ${text}`);
  }
}
