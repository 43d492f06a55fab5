"""
A MongoDB wire-protocol test server: mongod is not packaged in Debian, so the tests talk to this
instead. Messages are read and written with the BSON codec of the official Python driver (Debian
python3-pymongo / python3-bson), framed as mongod frames them: a 16-byte header read on its own,
then the body. It answers the OP_QUERY handshake (isMaster on admin.$cmd) with OP_REPLY and every
OP_MSG command the driver sends for the operations used in the tests, with mongod's reply shapes:
hello/isMaster (an awaitable one waits maxAwaitTimeMS, as mongod does)/ping/buildInfo/endSessions, insert (duplicate _id -> writeErrors 11000), find,
delete, count, drop (missing collection -> 26 NamespaceNotFound); anything else -> 59
CommandNotFound. In memory, one process, 127.0.0.1 only.

    /usr/bin/python3 test/protocols/mongo-server.py PORT
"""

import socket
import struct
import sys
import threading
import time

import bson
from bson import ObjectId

OP_REPLY, OP_QUERY, OP_MSG = 1, 2004, 2013
collections = {}
lock = threading.Lock()
next_id = [1000]


def hello_doc():
    return {
        'ismaster': True, 'helloOk': True, 'topologyVersion': {'processId': ObjectId(), 'counter': 0},
        'maxBsonObjectSize': 16 * 1024 * 1024, 'maxMessageSizeBytes': 48000000, 'maxWriteBatchSize': 100000,
        'localTime': __import__('datetime').datetime.utcnow(), 'logicalSessionTimeoutMinutes': 30,
        'connectionId': 1, 'minWireVersion': 0, 'maxWireVersion': 9, 'readOnly': False, 'ok': 1.0,
    }


def command(doc):
    name = next(iter(doc))
    key = name.lower()
    db = doc.get('$db', 'admin')
    with lock:
        if key in ('hello', 'ismaster'):
            if 'topologyVersion' in doc and 'maxAwaitTimeMS' in doc:
                # An awaitable hello (a driver's monitor): like mongod, answer only when the topology
                # changes or maxAwaitTimeMS passes; this one never changes.
                lock.release()
                try:
                    time.sleep(min(int(doc['maxAwaitTimeMS']), 10000) / 1000)
                finally:
                    lock.acquire()
            return hello_doc()
        if key == 'ping' or key == 'endsessions':
            return {'ok': 1.0}
        if key == 'buildinfo':
            return {'version': '4.4.0', 'versionArray': [4, 4, 0, 0], 'ok': 1.0}
        coll = collections.setdefault(f'{db}.{doc[name]}', {}) if isinstance(doc.get(name), str) and key != 'drop' else None
        if key == 'insert':
            errors = []
            for i, d in enumerate(doc.get('documents', [])):
                if d['_id'] in coll:
                    errors.append({'index': i, 'code': 11000, 'keyPattern': {'_id': 1}, 'keyValue': {'_id': d['_id']},
                                   'errmsg': f"E11000 duplicate key error collection: {db}.{doc[name]} index: _id_ dup key: {{ _id: {d['_id']!r} }}"})
                else:
                    coll[d['_id']] = d
            reply = {'n': len(doc.get('documents', [])) - len(errors), 'ok': 1.0}
            if errors:
                reply['writeErrors'] = errors
            return reply
        if key == 'find':
            flt = doc.get('filter', {})
            docs = [d for d in coll.values() if all(d.get(k) == v for k, v in flt.items())][: doc.get('limit') or None]
            return {'cursor': {'firstBatch': docs, 'id': 0, 'ns': f'{db}.{doc[name]}'}, 'ok': 1.0}
        if key == 'count':
            return {'n': len(coll), 'ok': 1.0}
        if key == 'delete':
            n = 0
            for q in doc.get('deletes', []):
                for k in [k for k, d in coll.items() if all(d.get(a) == b for a, b in q['q'].items())]:
                    del coll[k]
                    n += 1
            return {'n': n, 'ok': 1.0}
        if key == 'drop':
            ns = f'{db}.{doc[name]}'
            if ns not in collections:
                return {'ok': 0.0, 'errmsg': 'ns not found', 'code': 26, 'codeName': 'NamespaceNotFound'}
            del collections[ns]
            return {'nIndexesWas': 1, 'ns': ns, 'ok': 1.0}
    return {'ok': 0.0, 'errmsg': f"no such command: '{name}'", 'code': 59, 'codeName': 'CommandNotFound'}


def recv_exact(s, n):
    buf = b''
    while len(buf) < n:
        got = s.recv(n - len(buf))
        if not got:
            raise EOFError
        buf += got
    return buf


def reply(s, request_id, opcode, payload):
    next_id[0] += 1
    s.sendall(struct.pack('<iiii', 16 + len(payload), next_id[0], request_id, opcode) + payload)


def serve(s):
    try:
        while True:
            length, request_id, _response_to, opcode = struct.unpack('<iiii', recv_exact(s, 16))
            body = recv_exact(s, length - 16)
            if opcode == OP_QUERY:
                end = body.index(b'\0', 4)
                doc_at = end + 1 + 8
                size = struct.unpack_from('<i', body, doc_at)[0]
                out = command(bson.decode(body[doc_at:doc_at + size]))
                reply(s, request_id, OP_REPLY, struct.pack('<iqii', 0, 0, 0, 1) + bson.encode(out))
            elif opcode == OP_MSG:
                flags = struct.unpack_from('<I', body, 0)[0]
                pos, doc = 4, None
                end = len(body) - (4 if flags & 1 else 0)
                seqs = {}
                while pos < end:
                    kind = body[pos]
                    pos += 1
                    size = struct.unpack_from('<i', body, pos)[0]
                    if kind == 0:
                        doc = bson.decode(body[pos:pos + size])
                    else:
                        z = body.index(b'\0', pos + 4)
                        ident = body[pos + 4:z].decode()
                        p, items = z + 1, []
                        while p < pos + size:
                            n = struct.unpack_from('<i', body, p)[0]
                            items.append(bson.decode(body[p:p + n]))
                            p += n
                        seqs[ident] = items
                    pos += size
                doc.update(seqs)
                out = command(doc)
                if not flags & 2:  # moreToCome: the client wants no reply
                    reply(s, request_id, OP_MSG, struct.pack('<IB', 0, 0) + bson.encode(out))
            else:
                return
    except (EOFError, ConnectionError):
        pass
    finally:
        s.close()


def main():
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(('127.0.0.1', int(sys.argv[1])))
    srv.listen(64)
    while True:
        c, _ = srv.accept()
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=serve, args=(c,), daemon=True).start()


if __name__ == '__main__':
    main()
