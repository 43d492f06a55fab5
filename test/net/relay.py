#!/usr/bin/env python3
"""A user-space wire between two interfaces (issue 19 acceptance): every frame received on one
interface is sent out of the other after DELAY_MS, and every Nth frame of each direction is
dropped when DROP_EVERY > 0 (a deterministic share: 20 = 5 %). This kernel has no sch_netem, so
this stands in for `tc qdisc add ... netem delay 20ms loss 5%` on the path between two host-side
veth ends. AF_PACKET sockets; frames the relay itself sends (PACKET_OUTGOING) are not relayed.

    python3 relay.py IF_A IF_B DELAY_MS [DROP_EVERY]

Prints "relay ready" once both sockets are bound; SIGTERM stops it.
"""
import heapq
import signal
import socket
import sys
import threading
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def main() -> None:
    if_a, if_b, delay_ms = sys.argv[1], sys.argv[2], float(sys.argv[3])
    drop_every = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    socks = {}
    for name in (if_a, if_b):
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((name, 0))
        socks[name] = s
    queue = []  # (due, seq, out_if, frame)
    cond = threading.Condition()
    counter = [0]
    stats = {"relayed": 0, "dropped": 0}
    stop = threading.Event()

    def reader(src: str, dst: str) -> None:
        n = 0
        s = socks[src]
        while not stop.is_set():
            try:
                frame, addr = s.recvfrom(65536)
            except OSError:
                return
            if addr[2] == PACKET_OUTGOING:
                continue
            n += 1
            if drop_every and n % drop_every == 0:
                stats["dropped"] += 1
                continue
            with cond:
                counter[0] += 1
                heapq.heappush(queue, (time.monotonic() + delay_ms / 1000.0, counter[0], dst, frame))
                cond.notify()

    def writer() -> None:
        while not stop.is_set():
            with cond:
                while not queue and not stop.is_set():
                    cond.wait(0.5)
                if stop.is_set():
                    return
                due, _, dst, frame = queue[0]
                wait = due - time.monotonic()
                if wait > 0:
                    cond.wait(wait)
                    continue
                heapq.heappop(queue)
            try:
                socks[dst].send(frame)
                stats["relayed"] += 1
            except OSError as e:  # a frame larger than the MTU, an interface going away
                sys.stderr.write(f"relay: send on {dst} failed: {e}\n")

    def on_term(*_: object) -> None:
        stop.set()
        with cond:
            cond.notify_all()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    threads = [threading.Thread(target=reader, args=(if_a, if_b), daemon=True), threading.Thread(target=reader, args=(if_b, if_a), daemon=True), threading.Thread(target=writer, daemon=True)]
    for t in threads:
        t.start()
    print("relay ready", flush=True)
    while not stop.is_set():
        stop.wait(0.5)
    print(f"relay stopped: relayed {stats['relayed']} dropped {stats['dropped']}", flush=True)


if __name__ == "__main__":
    main()
