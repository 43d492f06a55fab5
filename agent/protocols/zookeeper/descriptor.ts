import type { ProtocolDescriptor } from '../parser.ts';

/**
 * How zookeeper messages pair into spans: a reply carries its request's xid (request_id); pings
 * share xid -2 and are answered in order. Watch notifications (xid -1) are pushed, never answered.
 * The server (Java NIO) reads the 4-byte length apart from the body, hence the sequence slack.
 */
export const zookeeperDescriptor: ProtocolDescriptor = {
  name: 'zookeeper',
  pairing: 'by-id',
  aliases: [],
  oneWay: [{ requestType: 'watchEvent', when: 'always' }],
  sequenceSlack: [0, 4, -4],
};
