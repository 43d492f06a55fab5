#!/usr/bin/env python3
"""Two plain, uninstrumented HTTP services for the trace-assembly acceptance test.

  acceptance-services.py a PORT DNS_PORT REDIS_PORT PG_PORT B_PORT
      GET /checkout?i=N: a DNS lookup, a Redis GET, a PostgreSQL query, then GET /price?i=N on B.
  acceptance-services.py b PORT MARIADB_PORT
      GET /price?i=N: a MariaDB query.

Standard library only; each call opens its own connection and speaks the wire protocol directly
(no client libraries to install). One thread per connection (ThreadingHTTPServer). No tracing
headers anywhere.
"""
import http.client
import random
import socket
import struct
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def recv_exact(s, n):
    buf = b''
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError('closed')
        buf += chunk
    return buf


def dns_lookup(port, name):
    qid = random.randrange(1, 65535)
    q = struct.pack('!HHHHHH', qid, 0x0100, 1, 0, 0, 0)
    q += b''.join(bytes([len(p)]) + p.encode() for p in name.split('.')) + b'\0' + struct.pack('!HH', 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(5)
    s.sendto(q, ('127.0.0.1', port))
    s.recvfrom(512)
    s.close()


def redis_get(port, key):
    s = socket.create_connection(('127.0.0.1', port))
    s.sendall(b'*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n' % (len(key), key))
    s.recv(4096)
    s.close()


def pg_until_ready(s):
    while True:
        head = recv_exact(s, 5)
        body = recv_exact(s, struct.unpack('!i', head[1:5])[0] - 4)
        if head[:1] == b'Z':
            return
        if head[:1] == b'E':
            raise RuntimeError(body)


def pg_query(port, sql):
    s = socket.create_connection(('127.0.0.1', port))
    params = b'user\0postgres\0database\0postgres\0\0'
    s.sendall(struct.pack('!ii', 8 + len(params), 196608) + params)
    pg_until_ready(s)
    q = sql.encode() + b'\0'
    s.sendall(b'Q' + struct.pack('!i', 4 + len(q)) + q)
    pg_until_ready(s)
    s.sendall(b'X' + struct.pack('!i', 4))
    s.close()


def my_packet(s):
    head = recv_exact(s, 4)
    n = head[0] | head[1] << 8 | head[2] << 16
    return head[3], recv_exact(s, n)


def my_send(s, seq, payload):
    s.sendall(struct.pack('<I', len(payload))[:3] + bytes([seq]) + payload)


def mariadb_query(port, sql):
    s = socket.create_connection(('127.0.0.1', port))
    seq, _greeting = my_packet(s)
    caps = 0x0200 | 0x8000 | 0x00080000  # PROTOCOL_41, SECURE_CONNECTION, PLUGIN_AUTH
    resp = struct.pack('<IIB', caps, 1 << 24, 33) + b'\0' * 23 + b'root\0' + b'\0' + b'mysql_native_password\0'
    my_send(s, seq + 1, resp)
    seq, pkt = my_packet(s)
    if pkt[:1] == b'\xfe':  # auth switch: no password under --skip-grant-tables
        my_send(s, seq + 1, b'')
        seq, pkt = my_packet(s)
    if pkt[:1] != b'\x00':
        raise RuntimeError('mariadb login failed: %r' % pkt[:80])
    my_send(s, 0, b'\x03' + sql.encode())
    _, first = my_packet(s)
    if first[:1] not in (b'\x00', b'\xff'):
        eofs = 0
        while eofs < 2:
            _, p = my_packet(s)
            if p[:1] == b'\xfe' and len(p) < 9:
                eofs += 1
    my_send(s, 0, b'\x01')
    s.close()


def respond(handler, body):
    handler.wfile.write(b'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' % (len(body), body))


def service_a(port, dns, redis, pg, b):
    class A(BaseHTTPRequestHandler):
        def do_GET(self):
            i = self.path.split('i=')[-1]
            dns_lookup(dns, 'svc.riptide.test')
            redis_get(redis, b'cart:' + i.encode())
            pg_query(pg, 'SELECT %d AS cart' % int(i))
            c = http.client.HTTPConnection('127.0.0.1', b)
            c.request('GET', '/price?i=' + i)
            price = c.getresponse().read()
            c.close()
            respond(self, b'checkout ' + i.encode() + b' ' + price)

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(('127.0.0.1', port), A).serve_forever()


def service_b(port, mariadb):
    class B(BaseHTTPRequestHandler):
        def do_GET(self):
            i = self.path.split('i=')[-1]
            mariadb_query(mariadb, 'SELECT %d AS price' % int(i))
            respond(self, b'price ' + i.encode())

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(('127.0.0.1', port), B).serve_forever()


if __name__ == '__main__':
    ThreadingHTTPServer.request_queue_size = 256
    if sys.argv[1] == 'a':
        service_a(*map(int, sys.argv[2:7]))
    else:
        service_b(*map(int, sys.argv[2:4]))
