import type { ProtocolDescriptor } from '../parser.ts';

/**
 * How mongodb messages pair into spans: a reply's responseTo is its request's requestID
 * (request_id). A write sent with OP_MSG's moreToCome bit (w: 0) gets no reply. mongod reads the 16-byte
 * header apart from the body, hence the sequence slack.
 */
export const mongodbDescriptor: ProtocolDescriptor = {
  name: 'mongodb',
  pairing: 'by-id',
  aliases: [],
  oneWay: ['insert', 'update', 'delete'].map((requestType) => ({ requestType, when: 'OP_MSG moreToCome (w: 0)' })),
  sequenceSlack: [0, 16, -16],
};
