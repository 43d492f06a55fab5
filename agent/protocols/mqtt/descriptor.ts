import type { ProtocolDescriptor } from '../parser.ts';

/** How mqtt messages pair into spans. Packet ids pair (PUBACK, SUBACK…); packets without one pair in order. */
export const mqttDescriptor: ProtocolDescriptor = {
  name: 'mqtt',
  pairing: 'by-id',
  aliases: [],
  // AUTH (MQTT 5) may be followed by an AUTH or CONNACK from the other side, but no packet type
  // answers it (the next AUTH is a message of its own; CONNACK answers CONNECT): each is one-way.
  oneWay: [{ requestType: 'PUBLISH', when: 'QoS 0' }, { requestType: 'DISCONNECT', when: 'always' }, { requestType: 'AUTH', when: 'always' }],
};
