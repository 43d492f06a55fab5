"""
Drives the official Python MongoDB driver (Debian python3-pymongo) from commands on stdin, one per
line, printing "ok <result>" or "err <code>" after each, so a test can keep one connection open
across the agent's start:

    insert COLL ID ITEM | find COLL ID | count COLL | drop COLL | bogus | quit

    /usr/bin/python3 test/protocols/mongo-client.py PORT
"""

import sys

import pymongo
from pymongo.errors import OperationFailure

client = pymongo.MongoClient('127.0.0.1', int(sys.argv[1]), directConnection=True, serverSelectionTimeoutMS=10000, connect=True, maxPoolSize=1)
db = client['shop']
for line in sys.stdin:
    words = line.split()
    if not words:
        continue
    op, args = words[0], words[1:]
    try:
        if op == 'insert':
            out = db[args[0]].insert_one({'_id': int(args[1]), 'item': args[2]}).inserted_id
        elif op == 'find':
            out = db[args[0]].find_one({'_id': int(args[1])})
        elif op == 'count':
            out = db.command('count', args[0])['n']
        elif op == 'drop':
            out = db.command('drop', args[0])['ok']
        elif op == 'bogus':
            out = db.command('riptideBogus')
        elif op == 'quit':
            break
        else:
            out = f'unknown {op}'
        print('ok', out, flush=True)
    except OperationFailure as e:
        print('err', e.code, flush=True)
    except pymongo.errors.DuplicateKeyError as e:
        print('err', e.code, flush=True)
client.close()
