import type { ProtocolDescriptor } from '../parser.ts';

/** How mqtt messages pair into spans. Packet ids pair (PUBACK, SUBACK…); packets without one pair in order. */
export const mqttDescriptor: ProtocolDescriptor = {
  name: 'mqtt',
  pairing: 'by-id',
  aliases: [],
  oneWay: [{ requestType: 'PUBLISH', when: 'QoS 0' }, { requestType: 'DISCONNECT', when: 'always' }, { requestType: 'AUTH', when: 'always' }],
};
