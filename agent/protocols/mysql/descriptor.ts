import type { ProtocolDescriptor } from '../parser.ts';

/** How mysql messages pair into spans. Statement ids are not request ids: replies come in order. The 4-byte header is often read apart from the payload. */
export const mysqlDescriptor: ProtocolDescriptor = {
  name: 'mysql',
  pairing: 'in-order',
  aliases: [],
  oneWay: [{ requestType: 'COM_QUIT', when: 'always' }, { requestType: 'COM_STMT_SEND_LONG_DATA', when: 'always' }, { requestType: 'COM_STMT_CLOSE', when: 'always' }],
  sequenceSlack: [0, 4, -4],
};
