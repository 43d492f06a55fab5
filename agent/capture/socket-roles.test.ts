import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SocketRoles, listeningPorts } from './socket-roles.ts';

const TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
`;
const TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue
   0: 00000000000000000000000000000000:1538 00000000000000000000000000000000:0000 0A 00000000:00000000
`;

describe('SocketRoles', () => {
  it('reads the LISTEN ports of /proc/net/tcp and tcp6', () => {
    expect([...listeningPorts(TCP)]).toEqual([8080]);
    expect([...listeningPorts(TCP6)]).toEqual([5432]);
  });

  it('calls a socket on a listening port the server side, any other TCP socket the client side', () => {
    const root = mkdtempSync(join(tmpdir(), 'rt-roles-'));
    for (const pid of [10, 11]) {
      mkdirSync(join(root, String(pid), 'net'), { recursive: true });
      mkdirSync(join(root, String(pid), 'ns'), { recursive: true });
      writeFileSync(join(root, String(pid), 'net', 'tcp'), TCP);
      writeFileSync(join(root, String(pid), 'net', 'tcp6'), TCP6);
      symlinkSync('net:[4026531840]', join(root, String(pid), 'ns', 'net'));
    }
    const roles = new SocketRoles(root);
    expect(roles.infer(10, 8080)).toBe('server');
    expect(roles.infer(11, 5432)).toBe('server');
    expect(roles.infer(10, 54321)).toBe('client');
    expect(roles.infer(99, 8080)).toBe('unknown'); // process gone
  });
});
