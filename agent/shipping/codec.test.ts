import { describe, expect, it } from 'vitest';
import { crc32 } from 'node:zlib';
import type { Batch } from './batch.ts';
import { readFileSync } from 'node:fs';
import { BATCH_FORMAT_VERSION, BATCH_HEADER_BYTES, BatchBodyStream, BatchEncodeError, BatchFormatError, decodeBatch, deserializeBatchBody, encodeBatch, encodeBatchAsync, readBatchHeader, serializeBatchBody } from './codec.ts';
import type { Compression } from './codec.ts';
import { rng, syntheticBatch } from '../../test/shipping/synthetic.ts';
import { declareDescriptor, descriptorFor } from '../protocols/descriptors.ts';
import type { ProtocolDescriptor } from '../protocols/parser.ts';

/** What a hand-built batch reads back as: itself, at the current version, with the descriptors of its protocols. */
function readBack(batch: Batch, descriptors: Array<ProtocolDescriptor | undefined>): Batch {
  const want: Batch = { ...batch, version: BATCH_FORMAT_VERSION };
  if (descriptors.length > 0) want.descriptors = descriptors as ProtocolDescriptor[];
  return want;
}

function expectFormatError(fn: () => unknown, reason?: string): BatchFormatError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BatchFormatError);
    if (reason) expect((err as BatchFormatError).reason).toBe(reason);
    return err as BatchFormatError;
  }
  throw new Error('expected a BatchFormatError');
}

/** Re-seal a tampered object with a correct checksum, to reach the body parser. */
function reseal(bytes: Uint8Array): Uint8Array {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  v.setUint32(20, crc32(bytes.subarray(BATCH_HEADER_BYTES), crc32(bytes.subarray(0, 20))), true);
  return bytes;
}

describe('batch codec', () => {
  it.each<Compression>(['none', 'deflate', 'gzip', 'brotli'])('round-trips a realistic batch with %s', (compression) => {
    const batch = syntheticBatch(300);
    const bytes = encodeBatch(batch, { compression });
    const back = decodeBatch(bytes);
    // syntheticBatch's first message is http1, then redis.
    expect(back).toEqual(readBack(batch, [descriptorFor('http1'), descriptorFor('redis')]));
    expect(readBatchHeader(bytes).messageCount).toBe(300);
  });

  it('async encoding gives the same object as sync', async () => {
    const batch = syntheticBatch(50);
    expect(Buffer.from(await encodeBatchAsync(batch))).toEqual(Buffer.from(encodeBatch(batch)));
  });

  it('keeps edge values exact: empty batch, extreme timestamps, odd numbers, unicode, attributes', () => {
    const empty: Batch = { version: BATCH_FORMAT_VERSION, agentId: 'a', host: '', slot: 0, slotSeconds: 1, part: 0, messages: [], processes: [], closed: [] };
    expect(decodeBatch(encodeBatch(empty))).toEqual(empty);

    const b = syntheticBatch(3);
    b.messages[0].tsNs = 0n;
    b.messages[0].enterNs = 2n ** 63n;
    b.messages[0].exitNs = 0n;
    b.messages[1].tsNs = 2n ** 64n - 1n;
    b.messages[1].l7 = [
      {
        l7Protocol: 'my-plugin ✓',
        msgType: 'response',
        requestId: -5,
        responseCode: 1.5,
        requestLength: Number.MAX_SAFE_INTEGER,
        responseLength: -0.25,
        responseStatus: 'server_error',
        responseException: 'boom — 例外',
        spanId: 'abc',
        parentSpanId: 'def',
        truncated: true,
        oneWay: true,
        version: 'HTTP/1.1',
        attributes: { 'tx.id': 'T-1', 'ключ': 'значение', '': '' },
      },
    ];
    b.messages[2].family = 'ipv6';
    b.messages[2].l4 = 'udp';
    b.messages[2].role = 'server';
    b.messages[2].localIp = '::1';
    b.messages[2].socketId = Number.MAX_SAFE_INTEGER;
    b.messages[2].payload = new Uint8Array(0);
    b.closed = [{ tsNs: 5n, pid: 1, socketId: 2 }];
    // 'my-plugin ✓' has no descriptor in this process: left out of the section.
    const protos = [...new Set(b.messages.flatMap((m) => m.l7.map((l) => l.l7Protocol)))].filter((p) => p !== 'my-plugin ✓');
    expect(decodeBatch(encodeBatch(b))).toEqual(readBack(b, protos.map(descriptorFor)));
  });

  it('carries oneWay and version (format 2): a QoS 0 publish stays one-way, the protocol version arrives', () => {
    const b = syntheticBatch(2);
    b.messages[0].l7 = [{ l7Protocol: 'mqtt', msgType: 'request', requestType: 'PUBLISH', requestResource: 't/1', oneWay: true, version: '5' }];
    b.messages[1].l7 = [{ l7Protocol: 'kafka', msgType: 'response', requestId: 7, version: '9' }, { l7Protocol: 'http1', msgType: 'request', version: '' }];
    const back = decodeBatch(encodeBatch(b));
    expect(back.version).toBe(BATCH_FORMAT_VERSION);
    expect(back.messages[0].l7).toEqual(b.messages[0].l7);
    expect(back.messages[1].l7).toEqual(b.messages[1].l7);
  });

  it('carries the tls flag (format 3): set where the message was TLS plaintext, absent elsewhere', () => {
    const b = syntheticBatch(2);
    b.messages[0].l7 = [{ l7Protocol: 'http1', msgType: 'request', requestType: 'GET', tls: true }];
    b.messages[1].l7 = [{ l7Protocol: 'http1', msgType: 'response', responseCode: 200 }];
    const back = decodeBatch(encodeBatch(b));
    expect(back.version).toBe(BATCH_FORMAT_VERSION);
    expect(back.messages[0].l7[0].tls).toBe(true);
    expect(back.messages[1].l7[0]).not.toHaveProperty('tls');
  });

  it('still reads format 1 objects written by the previous release', () => {
    // Written by the format-1 encoder (commit ef28be2): syntheticBatch(40, 7), message 3 carrying every format-1 L7 field.
    const bytes = new Uint8Array(readFileSync(new URL('./fixtures/rtb-v1.bin', import.meta.url)));
    expect(readBatchHeader(bytes).version).toBe(1);
    const want = syntheticBatch(40, 7);
    want.messages[3].l7 = [{ l7Protocol: 'mqtt', msgType: 'request', requestType: 'PUBLISH', requestDomain: 'c1', requestResource: 't/1', endpoint: 't/1', requestId: 9, responseCode: 0, responseStatus: 'ok', responseException: 'x', requestLength: 10, responseLength: 11, traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), parentSpanId: 'c'.repeat(16), xRequestId: 'xr', attributes: { k: 'v' }, truncated: true }];
    expect(decodeBatch(bytes)).toEqual({ ...want, version: 1 });
  });

  it('rejects format 2 presence bits inside a format 1 object', () => {
    const b = syntheticBatch(1);
    b.messages[0].l7 = [{ l7Protocol: 'mqtt', msgType: 'request', oneWay: true }];
    const body = serializeBatchBody(b, 2);
    expect(deserializeBatchBody(body, 2).messages[0].l7[0].oneWay).toBe(true);
    expect(() => deserializeBatchBody(body, 1)).toThrow(/unknown l7 flags/);
  });

  it('carries handoffTraceId (format 3) and reads format 2 bodies, which have none', () => {
    const b = syntheticBatch(3);
    b.messages[1].handoffTraceId = 2 ** 52 + 5;
    const back = decodeBatch(encodeBatch(b));
    expect(back.version).toBe(BATCH_FORMAT_VERSION);
    expect(back.messages[1].handoffTraceId).toBe(2 ** 52 + 5);
    expect(back.messages[0].handoffTraceId).toBeUndefined();
    const old = deserializeBatchBody(serializeBatchBody(b, 2), 2);
    expect(old.messages[1].handoffTraceId).toBeUndefined();
    expect(old.messages[1].syscallTraceId).toBe(b.messages[1].syscallTraceId);
    expect(old.messages[2].payload).toEqual(b.messages[2].payload);
  });

  it('carries the network fields (format 4): interface, TCP health, failed connect; format 3 bodies have none', () => {
    const b = syntheticBatch(3);
    Object.assign(b.messages[1], { observationPoint: 'veth1a2b', tcpRetransmits: 3, tcpSrttUs: 41_250, connectFailed: true });
    const back = decodeBatch(encodeBatch(b));
    expect(back.version).toBe(4);
    expect(back.messages[1]).toMatchObject({ observationPoint: 'veth1a2b', tcpRetransmits: 3, tcpSrttUs: 41_250, connectFailed: true });
    for (const k of ['observationPoint', 'tcpRetransmits', 'tcpSrttUs', 'connectFailed'] as const) expect(back.messages[0][k]).toBeUndefined();
    const old = deserializeBatchBody(serializeBatchBody(b, 3), 3);
    expect(old.messages[1].observationPoint).toBeUndefined();
    expect(old.messages[1].tcpRetransmits).toBeUndefined();
    expect(old.messages[2].payload).toEqual(b.messages[2].payload);
  });

  it('carries the descriptors of its protocols (format 4): built-ins, aliases once, plugins declared in the process', () => {
    const tiny: ProtocolDescriptor = { name: 'tinyrpc-codec-test', aliases: ['tinyrpc-alias'], pairing: 'in-order', oneWay: [{ requestType: 'NOTIFY', when: 'always' }], timeoutMs: 250, sequenceSlack: [0, 2.5, -4] };
    declareDescriptor(tiny);
    const b = syntheticBatch(4);
    b.messages[0].l7 = [{ l7Protocol: 'grpc', msgType: 'request', requestId: 1 }];
    b.messages[1].l7 = [{ l7Protocol: 'http2', msgType: 'response', requestId: 1 }];
    b.messages[2].l7 = [{ l7Protocol: 'tinyrpc-alias', msgType: 'request' }];
    b.messages[3].l7 = [{ l7Protocol: 'no-such-protocol', msgType: 'request' }];
    const back = decodeBatch(encodeBatch(b));
    expect(back.descriptors).toEqual([descriptorFor('http2'), tiny]);
    // The stream (what the agent writes) gives the same bytes.
    const s = new BatchBodyStream(b);
    for (const m of b.messages) s.add(m);
    expect(Buffer.from(s.finish(b.processes, b.closed))).toEqual(Buffer.from(serializeBatchBody(b)));
    // Format 3 bodies have no section: no descriptors, readers use the built-in table.
    expect(deserializeBatchBody(serializeBatchBody(b, 3), 3).descriptors).toBeUndefined();
    // Explicit descriptors win over the process's table.
    const mine: ProtocolDescriptor = { name: 'grpc-as-seen', aliases: [], pairing: 'by-id', oneWay: [] };
    expect(decodeBatch(encodeBatch({ ...b, descriptors: [mine] })).descriptors).toEqual([mine]);
  });

  it('leaves out a descriptor it cannot write instead of losing the batch, and rejects a bad pairing on read', () => {
    declareDescriptor({ name: 'bad-desc-test', aliases: [], pairing: 'sometimes' as 'by-id', oneWay: [] });
    const b = syntheticBatch(1);
    b.messages[0].l7 = [{ l7Protocol: 'bad-desc-test', msgType: 'request' }];
    const s = new BatchBodyStream(b);
    s.add(b.messages[0]);
    const body = s.finish(b.processes, b.closed);
    const back = deserializeBatchBody(body);
    expect(back.messages).toHaveLength(1);
    expect(back.descriptors).toBeUndefined();
    // A body whose section names pairing 7: a malformed batch, said in one line.
    const good = serializeBatchBody({ ...b, descriptors: [{ name: 'x', aliases: [], pairing: 'by-id', oneWay: [] }] });
    const tampered = good.slice();
    // Section tail: count 1, name (new string: 0, len 1, 'x'), pairing byte, 0 aliases, 0 rules, 0 timeout, 0 slack.
    expect(Array.from(tampered.subarray(tampered.length - 9))).toEqual([1, 0, 1, 0x78, 1, 0, 0, 0, 0]);
    tampered[tampered.length - 5] = 7;
    expect(() => deserializeBatchBody(tampered)).toThrow(/descriptor x: bad pairing/);
  });

  it('reads back batches of the smallest possible messages (count bounds are not too strict)', () => {
    const b = syntheticBatch(1);
    const m = { ...b.messages[0], pid: 1, tid: 1, tcpSeq: 0, syscallTraceId: 0, bytes: 0, payload: new Uint8Array(0), l7: [] };
    b.messages = Array.from({ length: 5000 }, () => ({ ...m }));
    b.processes = [];
    b.closed = [];
    expect(decodeBatch(encodeBatch(b, { compression: 'none' })).messages).toHaveLength(5000);
  });

  it('writes the same body when messages are streamed in one at a time', () => {
    const batch = syntheticBatch(400);
    const s = new BatchBodyStream(batch);
    for (const m of batch.messages) s.add(m);
    expect(s.messageCount).toBe(400);
    expect(Buffer.from(s.finish(batch.processes, batch.closed))).toEqual(Buffer.from(serializeBatchBody(batch)));
  });

  it('rolls a stream back past a message that cannot be encoded, dictionary entries included', () => {
    const batch = syntheticBatch(50);
    const s = new BatchBodyStream(batch);
    const bad = { ...batch.messages[10], processName: 'only-in-the-bad-message', localIp: '10.99.99.99', socketId: 987654, syscall: 'ioctl' } as unknown as (typeof batch.messages)[number];
    for (const [i, m] of batch.messages.entries()) {
      if (i === 10) expect(() => s.add(bad)).toThrow(/syscall/);
      s.add(m);
    }
    const decoded = deserializeBatchBody(s.finish(batch.processes, batch.closed));
    expect(decoded.messages).toEqual(batch.messages);
  });

  it('refuses to encode values outside the contract with a typed error', () => {
    const b = syntheticBatch(1);
    b.messages[0].pid = -1;
    expect(() => encodeBatch(b)).toThrow(BatchEncodeError);
    const c = syntheticBatch(1);
    (c.messages[0] as { syscall: string }).syscall = 'ioctl';
    expect(() => encodeBatch(c)).toThrow(/syscall/);
  });

  it('reports truncation, bad magic, bad checksum and unknown versions clearly', () => {
    const bytes = encodeBatch(syntheticBatch(20));
    expectFormatError(() => decodeBatch(bytes.subarray(0, 10)), 'truncated');
    expectFormatError(() => decodeBatch(bytes.subarray(0, bytes.length - 1)), 'truncated');
    expectFormatError(() => decodeBatch(new TextEncoder().encode('{"not":"a batch"} and more bytes here')), 'bad_magic');

    const flipped = bytes.slice();
    flipped[BATCH_HEADER_BYTES + 40] ^= 0x10;
    const e = expectFormatError(() => decodeBatch(flipped), 'bad_checksum');
    expect(e.message).toMatch(/^batch: bad checksum: CRC-32/);

    for (const unknown of [0, BATCH_FORMAT_VERSION + 1]) {
      const other = bytes.slice();
      other[4] = unknown;
      expectFormatError(() => decodeBatch(reseal(other)), 'unsupported_version');
    }

    expect(e.withKey('batches/x.rtb').message).toMatch(/^batch batches\/x\.rtb: bad checksum: CRC-32/);
  });

  it('refuses a body that claims to be huge before allocating', () => {
    const bytes = encodeBatch(syntheticBatch(5));
    new DataView(bytes.buffer).setUint32(12, 0xffffffff, true);
    expectFormatError(() => decodeBatch(reseal(bytes)), 'too_large');
    const small = encodeBatch(syntheticBatch(5));
    expectFormatError(() => decodeBatch(small, { maxBodyBytes: 100 }), 'too_large');
  });

  it('catches a header that lies about the body length', () => {
    const bytes = encodeBatch(syntheticBatch(5));
    const v = new DataView(bytes.buffer);
    v.setUint32(12, v.getUint32(12, true) - 1, true);
    expectFormatError(() => decodeBatch(reseal(bytes)), 'bad_compression');
  });

  it('fuzz: random mutations of valid objects (checksum fixed up) only ever throw BatchFormatError', () => {
    const r = rng(42);
    for (const compression of ['none', 'deflate'] as const) {
      const good = encodeBatch(syntheticBatch(40), { compression });
      for (let i = 0; i < 1500; i++) {
        const bytes = good.slice();
        const flips = 1 + Math.floor(r() * 4);
        for (let j = 0; j < flips; j++) {
          const at = BATCH_HEADER_BYTES + Math.floor(r() * (bytes.length - BATCH_HEADER_BYTES));
          bytes[at] = Math.floor(r() * 256);
        }
        const cut = r() < 0.2 ? bytes.subarray(0, BATCH_HEADER_BYTES + Math.floor(r() * (bytes.length - BATCH_HEADER_BYTES))) : bytes;
        if (cut !== bytes) new DataView(cut.buffer, cut.byteOffset).setUint32(16, cut.length - BATCH_HEADER_BYTES, true);
        try {
          decodeBatch(reseal(cut));
        } catch (err) {
          if (!(err instanceof BatchFormatError)) throw err;
        }
      }
    }
  });

  it('fuzz: random bytes behind a valid header never over-allocate or escape as other errors', () => {
    const r = rng(7);
    for (let i = 0; i < 2000; i++) {
      const len = Math.floor(r() * 300);
      const body = new Uint8Array(len);
      for (let j = 0; j < len; j++) body[j] = r() < 0.3 ? 0xff : Math.floor(r() * 256);
      const bytes = new Uint8Array(BATCH_HEADER_BYTES + len);
      bytes.set(new TextEncoder().encode('RPTB'));
      bytes[4] = 1;
      const v = new DataView(bytes.buffer);
      v.setUint32(8, Math.floor(r() * 2 ** 32), true);
      v.setUint32(12, len, true);
      v.setUint32(16, len, true);
      bytes.set(body, BATCH_HEADER_BYTES);
      try {
        decodeBatch(reseal(bytes));
      } catch (err) {
        if (!(err instanceof BatchFormatError)) throw err;
      }
    }
  });
});
