import type { ProtocolDescriptor } from '../parser.ts';

/** How kafka messages pair into spans. Correlation ids pair; the 4-byte length prefix is often read apart from the message. */
export const kafkaDescriptor: ProtocolDescriptor = {
  name: 'kafka',
  pairing: 'by-id',
  aliases: [],
  oneWay: [{ requestType: 'Produce', when: 'acks = 0' }],
  sequenceSlack: [0, 4, -4],
};
