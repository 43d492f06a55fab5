import { describe, expect, it } from 'vitest';
import { describeConformance, otherFixtures } from '../conformance.ts';
import { ParserSession, loadFixtures, replay } from '../fixtures.ts';
import { zookeeperParser } from './index.ts';

const own = loadFixtures('zookeeper');
const chunksOf = (name: string) => {
  const f = own.find((x) => x.name === name);
  if (!f) throw new Error(`no fixture ${name}`);
  return f.chunks;
};
const summary = (chunks: ReturnType<typeof chunksOf>) => replay(zookeeperParser, chunks).map((m) => `${m.msgType}:${m.requestType}#${m.requestId ?? ''}${m.requestResource ? ` ${m.requestResource}` : ''}${m.responseCode ? ` ${m.responseCode}` : ''}`);

describeConformance(zookeeperParser, { own, others: otherFixtures('zookeeper'), pipelining: false, fuzzIterations: 1_000_000 });

describe('zookeeper against zkCli.sh and the Debian server', () => {
  it('reads the session handshake and a create: path, xid, session id', () => {
    expect(summary(chunksOf('zkcli-create'))).toEqual(['request:CONNECT#0', 'response:CONNECT#0', 'request:create#1 /riptide', 'response:create#1']);
    const [, connected] = replay(zookeeperParser, chunksOf('zkcli-create'));
    expect(connected.attributes).toMatchObject({ session_id: expect.stringMatching(/^0x[0-9a-f]+$/) as string, session_timeout_ms: '30000' });
  });

  it('reports NoNode and NodeExists as client errors with their names', () => {
    const missing = replay(zookeeperParser, chunksOf('zkcli-get-missing'));
    expect(missing[2]).toMatchObject({ requestType: 'getData', requestResource: '/missing', endpoint: '/missing' });
    expect(missing[3]).toMatchObject({ msgType: 'response', requestType: 'getData', responseCode: -101, responseStatus: 'client_error', responseException: 'NoNode' });
    const exists = replay(zookeeperParser, chunksOf('zkcli-create-exists'));
    expect(exists[3]).toMatchObject({ responseCode: -110, responseStatus: 'client_error', responseException: 'NodeExists' });
  });

  it('reads an interactive session: pings, a watch notification from another client’s change, closeSession', () => {
    const got = summary(chunksOf('zkcli-session-watch'));
    expect(got.slice(0, 4)).toEqual(['request:CONNECT#0', 'response:CONNECT#0', 'request:ping#-2', 'response:ping#-2']);
    expect(got).toContain('request:create#1 /riptide/jobs');
    expect(got).toContain('request:getData#2 /riptide/jobs');
    expect(got).toContain('request:watchEvent# /riptide/jobs');
    expect(got.slice(-2)).toEqual(['request:closeSession#4', 'response:closeSession#4']);
    const ev = replay(zookeeperParser, chunksOf('zkcli-session-watch')).find((m) => m.requestType === 'watchEvent');
    expect(ev).toMatchObject({ oneWay: true, attributes: { event: 'NodeDataChanged' } });
  });

  it('recognises a session first seen mid-stream from its next request or ping', () => {
    const chunks = chunksOf('zkcli-session-watch');
    const s = new ParserSession(zookeeperParser, 'client', 'tcp');
    for (const i of [2, 4, 6, 15]) expect(zookeeperParser.check(chunks[i].data, s.context('c2s', chunks[i].data.length)), `read ${i}`).toBe(true);
    const later = summary(chunks.slice(15));
    expect(later).toEqual(['request:delete#3 /riptide/jobs', 'response:delete#3', 'request:closeSession#4', 'response:closeSession#4']);
  });

  it('folds a sequential node’s suffix in the endpoint and refuses malformed requests', () => {
    const path = '/locks/lock-0000000042';
    const body = Buffer.concat([Buffer.from([0, 0, 0, 7, 0, 0, 0, 4, 0, 0, 0, path.length]), Buffer.from(path), Buffer.from([0])]);
    const req = new Uint8Array(Buffer.concat([Buffer.from([0, 0, 0, body.length]), body]));
    const s = new ParserSession(zookeeperParser, 'client', 'tcp');
    expect(zookeeperParser.check(req, s.context('c2s', req.length))).toBe(true);
    expect(zookeeperParser.parse(req, s.context('c2s', req.length))).toEqual([expect.objectContaining({ requestType: 'getData', requestResource: path, endpoint: '/locks/lock-{seq}', requestId: 7 })]);
    const noSlash = new Uint8Array(req);
    noSlash[16] = 0x41;
    expect(zookeeperParser.check(noSlash, s.context('c2s', noSlash.length))).toBe(false);
    const badOp = new Uint8Array(req);
    badOp[11] = 0x63;
    expect(zookeeperParser.check(badOp, s.context('c2s', badOp.length))).toBe(false);
  });
});
