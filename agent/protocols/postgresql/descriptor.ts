import type { ProtocolDescriptor } from '../parser.ts';

/** How postgresql messages pair into spans. */
export const postgresqlDescriptor: ProtocolDescriptor = {
  name: 'postgresql',
  pairing: 'in-order',
  aliases: [],
  oneWay: [{ requestType: 'CANCEL', when: 'always' }, { requestType: 'TERMINATE', when: 'always' }],
};
