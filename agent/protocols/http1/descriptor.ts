import type { ProtocolDescriptor } from '../parser.ts';

/** How http1 messages pair into spans. */
export const http1Descriptor: ProtocolDescriptor = {
  name: 'http1',
  pairing: 'in-order',
  aliases: [],
  oneWay: [],
};
