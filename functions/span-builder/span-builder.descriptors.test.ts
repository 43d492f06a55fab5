import { describe, expect, it } from 'vitest';
import type { L7Message, ProtocolDescriptor } from '../../agent/protocols/parser.ts';
import type { Batch } from '../../agent/shipping/batch.ts';
import { decodeBatch, encodeBatch } from '../../agent/shipping/codec.ts';
import { BASE_SLOT, msg, proc } from '../../test/functions/fixtures.ts';
import { SpanBuilder } from './span-builder.ts';

const client = { socketId: 7, pid: 10, role: 'client' as const };
const req = (requestType: string, requestId?: number): L7Message => ({ l7Protocol: 'rpcx', msgType: 'request', requestType, ...(requestId === undefined ? {} : { requestId }), ...(requestType === 'NOTIFY' ? { oneWay: true } : {}) });
const resp = (requestId: number | undefined, code: number): L7Message => ({ l7Protocol: 'rpcx', msgType: 'response', responseCode: code, responseStatus: 'ok', ...(requestId === undefined ? {} : { requestId }) });

/**
 * A plugin protocol 'rpcx' whose replies carry an id that does NOT identify the request (as
 * MySQL's statement id): two requests, answered in order, the replies' ids swapped.
 */
function batch(descriptors?: ProtocolDescriptor[]): Batch {
  const b: Batch = {
    version: 4,
    agentId: 'a',
    host: 'a',
    slot: BASE_SLOT,
    slotSeconds: 5,
    part: 0,
    messages: [
      msg(client, 10, 'egress', [req('GET', 1)]),
      msg(client, 11, 'egress', [req('PUT', 2)]),
      msg(client, 20, 'ingress', [resp(2, 200)]),
      msg(client, 30, 'ingress', [resp(1, 201)]),
      msg(client, 40, 'egress', [req('NOTIFY')]),
      msg(client, 50, 'egress', [req('SLOW')]),
      msg(client, 2_000, 'ingress', [resp(undefined, 202)]),
    ],
    processes: [proc(10, 'client')],
    closed: [],
  };
  if (descriptors) b.descriptors = descriptors;
  // Through the real codec: what the span builder reads is what an agent wrote.
  return decodeBatch(encodeBatch(b));
}

const build = (b: Batch): Array<[string, string, number, string]> =>
  new SpanBuilder()
    .build({ agentId: 'a', slot: BASE_SLOT, prev: [], cur: [b], next: [] })
    .spans.map((s) => [s.request_type, s.pair_state, s.response_code, s.response_status]);

describe('span builder reads the descriptors a batch carries', () => {
  it("a plugin protocol declaring pairing 'in-order' pairs in order, with the descriptor's timeout", () => {
    const d: ProtocolDescriptor = { name: 'rpcx', aliases: [], pairing: 'in-order', oneWay: [{ requestType: 'NOTIFY', when: 'always' }], timeoutMs: 1_000 };
    expect(build(batch([d]))).toEqual([
      ['GET', 'paired', 200, 'ok'],
      ['PUT', 'paired', 201, 'ok'],
      ['NOTIFY', 'one_way', -1, 'ok'],
      // SLOW's answer came 1.95 s later: past the descriptor's 1 s, so a timeout and a lone response.
      ['SLOW', 'request_only', -1, 'timeout'],
      ['', 'response_only', 202, 'ok'],
    ]);
  });

  it("the same messages under 'by-id' pair by id; an old batch (no descriptors) gets the defaults", () => {
    const byId: ProtocolDescriptor = { name: 'rpcx', aliases: [], pairing: 'by-id', oneWay: [] };
    const expected = [
      ['GET', 'paired', 201, 'ok'],
      ['PUT', 'paired', 200, 'ok'],
      ['NOTIFY', 'one_way', -1, 'ok'],
      // The 60 s default timeout: SLOW takes the id-less answer.
      ['SLOW', 'paired', 202, 'ok'],
    ];
    expect(build(batch([byId]))).toEqual(expected);
    // Without a descriptor a protocol unknown to the built-in table pairs by id when it has one,
    // in order otherwise, with the 60 s default timeout.
    const old = batch();
    expect(old.descriptors).toBeUndefined();
    expect(build(old)).toEqual(expected);
  });

  it('an alias in the batch table maps to its descriptor', () => {
    const d: ProtocolDescriptor = { name: 'rpcx-v2', aliases: ['rpcx'], pairing: 'in-order', oneWay: [] };
    expect(build(batch([d])).slice(0, 2)).toEqual([
      ['GET', 'paired', 200, 'ok'],
      ['PUT', 'paired', 201, 'ok'],
    ]);
  });
});

describe("one-way requests by the descriptor's unconditional rules", () => {
  // A NOTIFY the parser did not flag (a plugin that does not set oneWay, or an older agent), sent
  // before a GET on a serial connection; one reply follows.
  const unflagged = (descriptors?: ProtocolDescriptor[], version = 4): Batch => {
    const b: Batch = {
      version,
      agentId: 'a',
      host: 'a',
      slot: BASE_SLOT,
      slotSeconds: 5,
      part: 0,
      messages: [
        msg(client, 10, 'egress', [{ l7Protocol: 'rpcx', msgType: 'request', requestType: 'NOTIFY' }]),
        msg(client, 20, 'egress', [{ l7Protocol: 'rpcx', msgType: 'request', requestType: 'GET' }]),
        msg(client, 30, 'ingress', [resp(undefined, 200)]),
      ],
      processes: [proc(10, 'client')],
      closed: [],
    };
    if (descriptors) b.descriptors = descriptors;
    return decodeBatch(encodeBatch(b));
  };
  const rpcx = (when: string): ProtocolDescriptor => ({ name: 'rpcx', aliases: [], pairing: 'in-order', oneWay: [{ requestType: 'NOTIFY', when }] });

  it("when: 'always' closes the request as one_way (status ok) though the parser did not flag it, and the reply goes to the next request", () => {
    expect(build(unflagged([rpcx('always')]))).toEqual([
      ['NOTIFY', 'one_way', -1, 'ok'],
      ['GET', 'paired', 200, 'ok'],
    ]);
  });

  it("a conditional rule stays the parser's call: an unflagged request waits for its answer", () => {
    expect(build(unflagged([rpcx('fire-and-forget bit')]))).toEqual([
      ['NOTIFY', 'paired', 200, 'ok'],
      ['GET', 'request_only', -1, 'timeout'],
    ]);
    // Without a descriptor there is no rule at all.
    expect(build(unflagged())).toEqual([
      ['NOTIFY', 'paired', 200, 'ok'],
      ['GET', 'request_only', -1, 'timeout'],
    ]);
  });

  it("built-in always-rules apply to a batch without descriptors (format 3); memcached's conditional quit does not", () => {
    const pg = { ...client, socketId: 8 };
    const my = { ...client, socketId: 9 };
    const mc = { ...client, socketId: 10 };
    const zk = { ...client, socketId: 11 };
    const old: Batch = {
      version: 3,
      agentId: 'a',
      host: 'a',
      slot: BASE_SLOT,
      slotSeconds: 5,
      part: 0,
      messages: [
        msg(pg, 10, 'egress', [{ l7Protocol: 'postgresql', msgType: 'request', requestType: 'TERMINATE' }]),
        msg(my, 11, 'egress', [{ l7Protocol: 'mysql', msgType: 'request', requestType: 'COM_QUIT' }]),
        msg(zk, 12, 'ingress', [{ l7Protocol: 'zookeeper', msgType: 'request', requestType: 'watchEvent', requestId: -1 }]),
        // Binary Quit (opcode 0x07) is answered before the server closes: it pairs.
        msg(mc, 13, 'egress', [{ l7Protocol: 'memcached', msgType: 'request', requestType: 'quit' }]),
        msg(mc, 14, 'ingress', [{ l7Protocol: 'memcached', msgType: 'response', responseCode: 0, responseStatus: 'ok' }]),
      ],
      processes: [proc(10, 'client')],
      closed: [],
    };
    expect(old.descriptors).toBeUndefined();
    const rows = new SpanBuilder().build({ agentId: 'a', slot: BASE_SLOT, prev: [], cur: [old], next: [] }).spans;
    expect(rows.map((s) => [s.l7_protocol, s.request_type, s.pair_state, s.response_status])).toEqual([
      ['postgresql', 'TERMINATE', 'one_way', 'ok'],
      ['mysql', 'COM_QUIT', 'one_way', 'ok'],
      ['memcached', 'quit', 'paired', 'ok'],
      ['zookeeper', 'watchEvent', 'one_way', 'ok'],
    ]);
  });
});
