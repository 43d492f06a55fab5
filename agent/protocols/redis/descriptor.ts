import type { ProtocolDescriptor } from '../parser.ts';

/** How redis messages pair into spans. Pipelined replies come in order. */
export const redisDescriptor: ProtocolDescriptor = {
  name: 'redis',
  pairing: 'in-order',
  aliases: [],
  oneWay: [],
};
