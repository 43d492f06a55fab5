#!/usr/bin/env python3
"""The Python asyncio system of test/query/asyncio.test.ts: stdlib asyncio streams only, no tracing headers.

  python3 asyncio-services.py down <port>
      answers GET /down/<n>/<a|b> after a short, varying delay (so concurrent calls finish out of order)
  python3 asyncio-services.py gateway <port> <downPort> <redisPort>
      one event loop serving every request; /seq/<n>: Redis GET item:<n>, then /down/<n>/a, then
      /down/<n>/b; /par/<n>: the three at once (asyncio.gather). HTTP calls go over a keep-alive pool
      of 4 connections shared by all requests, Redis over a pool of 2 connections.
The request number travels in the paths and the Redis key (content): the test's ground truth.
"""
import asyncio
import re
import sys


async def read_request(reader):
    """One HTTP/1.1 request head (no bodies here); None at EOF."""
    line = await reader.readline()
    if not line:
        return None
    while True:
        h = await reader.readline()
        if h in (b'\r\n', b'\n', b''):
            break
    return line.decode('latin-1').split(' ')[1]


def response(body, status='200 OK'):
    b = body.encode()
    return f'HTTP/1.1 {status}\r\nContent-Length: {len(b)}\r\nContent-Type: text/plain\r\n\r\n'.encode() + b


async def read_response(reader):
    length = 0
    line = await reader.readline()
    if not line:
        raise ConnectionError('closed')
    while True:
        h = await reader.readline()
        if h in (b'\r\n', b'\n'):
            break
        if not h:
            raise ConnectionError('closed')
        k, _, v = h.decode('latin-1').partition(':')
        if k.strip().lower() == 'content-length':
            length = int(v.strip())
    return (await reader.readexactly(length)).decode()


class Pool:
    """A fixed set of keep-alive connections; a call takes one, uses it, puts it back."""

    def __init__(self, port, size):
        self.port = port
        self.size = size
        self.free = asyncio.Queue()
        self.opened = 0

    async def take(self):
        if self.free.empty() and self.opened < self.size:
            self.opened += 1
            return await asyncio.open_connection('127.0.0.1', self.port)
        return await self.free.get()

    def give(self, conn):
        self.free.put_nowait(conn)


async def http_get(pool, path):
    conn = await pool.take()
    try:
        reader, writer = conn
        writer.write(f'GET {path} HTTP/1.1\r\nHost: down\r\nConnection: keep-alive\r\n\r\n'.encode())
        await writer.drain()
        return await read_response(reader)
    finally:
        pool.give(conn)


async def redis_get(pool, key):
    conn = await pool.take()
    try:
        reader, writer = conn
        writer.write(f'*2\r\n$3\r\nGET\r\n${len(key)}\r\n{key}\r\n'.encode())
        await writer.drain()
        head = await reader.readline()
        if head.startswith(b'$-1'):
            return 'nil'
        if not head.startswith(b'$'):
            return head.decode().strip()
        n = int(head[1:])
        return (await reader.readexactly(n + 2))[:-2].decode()
    finally:
        pool.give(conn)


async def serve(handler, port):
    async def client(reader, writer):
        try:
            while True:
                path = await read_request(reader)
                if path is None:
                    break
                writer.write(await handler(path))
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(client, '127.0.0.1', port)
    async with server:
        await server.serve_forever()


def main():
    role, port = sys.argv[1], int(sys.argv[2])
    if role == 'down':
        state = {'k': 0}

        async def down(path):
            state['k'] = (state['k'] * 7 + 3) % 11
            await asyncio.sleep((1 + state['k']) / 1000)
            return response(f'ok {path}\n')

        asyncio.run(serve(down, port))
    elif role == 'gateway':
        down_port, redis_port = int(sys.argv[3]), int(sys.argv[4])

        async def run():
            http_pool = Pool(down_port, 4)
            redis_pool = Pool(redis_port, 2)

            async def gateway(path):
                m = re.fullmatch(r'/(seq|par)/(\d+)', path)
                if not m:
                    return response('no\n', '404 Not Found')
                mode, n = m.groups()
                if mode == 'seq':
                    r = await redis_get(redis_pool, f'item:{n}')
                    a = await http_get(http_pool, f'/down/{n}/a')
                    b = await http_get(http_pool, f'/down/{n}/b')
                else:
                    r, a, b = await asyncio.gather(redis_get(redis_pool, f'item:{n}'), http_get(http_pool, f'/down/{n}/a'), http_get(http_pool, f'/down/{n}/b'))
                return response(f'{mode} {n}: {r} {a}{b}')

            await serve(gateway, port)

        asyncio.run(run())
    else:
        print('usage: asyncio-services.py down <port> | gateway <port> <downPort> <redisPort>', file=sys.stderr)
        sys.exit(2)


if __name__ == '__main__':
    main()
