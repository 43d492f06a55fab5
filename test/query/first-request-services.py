#!/usr/bin/env python3
"""Thread-per-request services with pooled clients, for test/query/first-request.test.ts.

  first-request-services.py a PORT REDIS_PORT B_PORT
      GET /checkout?i=N: a Redis GET cart:N over one pooled connection, then GET /price?i=N on B over
      one pooled keep-alive HTTP/1.1 connection. HTTP/1.1 keep-alive towards nginx too.
  first-request-services.py b PORT
      GET /price?i=N: answers.
One thread per connection (ThreadingHTTPServer); the pooled connections are opened by the first
request (the warm-up, before the agent starts) and kept. No tracing headers.
"""
import http.client
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Pooled:
    def __init__(self, make):
        self.make = make
        self.conn = None
        self.lock = threading.Lock()

    def use(self, fn):
        with self.lock:
            if self.conn is None:
                self.conn = self.make()
            return fn(self.conn)


def redis_get(s, key):
    s.sendall(f'*2\r\n$3\r\nGET\r\n${len(key)}\r\n{key}\r\n'.encode())
    buf = b''
    while not buf.endswith(b'\r\n') or (buf.startswith(b'$') and not buf.startswith(b'$-1') and buf.count(b'\r\n') < 2):
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError('closed')
        buf += chunk
    return buf


def main():
    role, port = sys.argv[1], int(sys.argv[2])
    if role == 'a':
        redis_port, b_port = int(sys.argv[3]), int(sys.argv[4])
        redis = Pooled(lambda: socket.create_connection(('127.0.0.1', redis_port)))
        b = Pooled(lambda: http.client.HTTPConnection('127.0.0.1', b_port, timeout=10))

        def price(c, i):
            c.request('GET', f'/price?i={i}')
            return c.getresponse().read()

        class A(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def do_GET(self):
                i = self.path.split('=')[-1]
                redis.use(lambda s: redis_get(s, f'cart:{i}'))
                p = b.use(lambda c: price(c, i))
                body = f'checkout {i} {p.decode()}'.encode()
                self.send_response(200)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        ThreadingHTTPServer(('127.0.0.1', port), A).serve_forever()
    else:

        class B(BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def do_GET(self):
                body = f'price {self.path.split("=")[-1]}\n'.encode()
                self.send_response(200)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        ThreadingHTTPServer(('127.0.0.1', port), B).serve_forever()


if __name__ == '__main__':
    main()
