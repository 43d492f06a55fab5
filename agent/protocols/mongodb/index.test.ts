import { describe, expect, it } from 'vitest';
import { describeConformance, otherFixtures } from '../conformance.ts';
import { ParserSession, loadFixtures, replay } from '../fixtures.ts';
import { mongodbParser } from './index.ts';

// Fixtures: pymongo 3.11 (the official Python driver, Debian python3-pymongo) against
// test/protocols/mongo-server.py, a test server on the same driver's BSON codec (mongod is not in Debian).
const own = loadFixtures('mongodb');
const chunksOf = (name: string) => {
  const f = own.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f.chunks;
};

describeConformance(mongodbParser, { own, others: otherFixtures('mongodb'), fuzzIterations: 1_000_000 });

describe('mongodb from pymongo', () => {
  const msgs = replay(mongodbParser, chunksOf('pymongo-crud'));

  it('reads the OP_QUERY handshake and each OP_MSG command: name, database, namespace', () => {
    expect(msgs.filter((m) => m.msgType === 'request').map((m) => `${m.requestType} ${m.requestResource}`)).toEqual([
      'ismaster ismaster', 'insert shop.orders', 'find shop.orders', 'insert shop.orders', 'count shop.orders', 'riptideBogus riptideBogus', 'drop shop.nothere', 'endSessions endSessions',
    ]);
    expect(msgs[0]).toMatchObject({ requestDomain: 'admin', endpoint: 'ismaster' });
    expect(msgs[2]).toMatchObject({ requestDomain: 'shop', endpoint: 'insert shop.orders' });
  });

  it('pairs replies by responseTo and reads errors: write errors, unknown command, missing namespace', () => {
    for (let i = 0; i < msgs.length; i += 2) expect(msgs[i + 1].requestId, `reply ${i + 1}`).toBe(msgs[i].requestId);
    expect(msgs[3]).toMatchObject({ msgType: 'response', responseStatus: 'ok' });
    expect(msgs[7]).toMatchObject({ responseCode: 11000, responseStatus: 'client_error', responseException: expect.stringMatching(/^E11000 duplicate key error collection: shop\.orders/) as string });
    expect(msgs[11]).toMatchObject({ responseCode: 59, responseStatus: 'client_error', responseException: "no such command: 'riptideBogus'", attributes: { codeName: 'CommandNotFound' } });
    expect(msgs[13]).toMatchObject({ responseCode: 26, responseStatus: 'client_error', responseException: 'ns not found' });
  });

  it('reads the monitor connection (OP_QUERY isMaster, then OP_MSG isMaster with exhaustAllowed)', () => {
    const mon = replay(mongodbParser, chunksOf('pymongo-monitor'));
    expect(mon[0]).toMatchObject({ msgType: 'request', requestType: 'ismaster' });
    expect(mon[1]).toMatchObject({ msgType: 'response', responseStatus: 'ok', requestId: mon[0].requestId });
    expect(mon.every((m) => m.msgType === 'response' || m.requestType === 'ismaster')).toBe(true);
  });

  it('recognises a connection first seen mid-stream from its next command or reply', () => {
    const chunks = chunksOf('pymongo-crud');
    const s = new ParserSession(mongodbParser, 'client', 'tcp');
    for (let i = 2; i < chunks.length; i++) expect(mongodbParser.check(chunks[i].data, s.context(chunks[i].dir, chunks[i].data.length)), `read ${i}`).toBe(true);
    expect(replay(mongodbParser, chunks.slice(4)).map((m) => m.requestType ?? m.responseStatus).slice(0, 4)).toEqual(['find', 'ok', 'insert', 'client_error']);
  });

  it('recognises a server that reads the 16-byte header apart from the body, first seen mid-stream', () => {
    const find = chunksOf('pymongo-crud')[4].data;
    const s = new ParserSession(mongodbParser, 'server', 'tcp');
    const head = find.subarray(0, 16);
    expect(mongodbParser.check(head, s.context('c2s', 16))).toBe(true);
    const got = [head, find.subarray(16)].flatMap((c) => mongodbParser.parse(c, s.context('c2s', c.length)) ?? []);
    expect(got).toEqual([expect.objectContaining({ msgType: 'request', requestType: 'find', requestResource: 'shop.orders' })]);
  });

  it('refuses unknown opcodes and OP_MSG flag bits', () => {
    const s = new ParserSession(mongodbParser, 'client', 'tcp');
    const find = new Uint8Array(chunksOf('pymongo-crud')[4].data);
    const op = new Uint8Array(find);
    op[12] = 0x99;
    expect(mongodbParser.check(op, s.context('c2s', op.length))).toBe(false);
    const flags = new Uint8Array(find);
    flags[17] = 0x80;
    expect(mongodbParser.check(flags, s.context('c2s', flags.length))).toBe(false);
  });
});
