"""Round-trip time of a one-byte ping-pong between two processes over pipes: blocking reads
(the processes on whichever vCPUs the kernel picks), and both sides spinning on non-blocking
reads. Run it pinned to one CPU (`taskset -c 0 python3 Benchmarks/wake_latency.py`) to see the
same-CPU case. What a wake-up of a bridge worker or of metarl costs on this machine."""
import os
import time

ROUNDS = 20000


def read_one(fd, spin):
    while True:
        try:
            return os.read(fd, 1)
        except BlockingIOError:
            if not spin:
                raise


def round_trip(spin):
    ping_r, ping_w = os.pipe()
    pong_r, pong_w = os.pipe()
    for fd in (ping_r, pong_r):
        os.set_blocking(fd, not spin)
    child = os.fork()
    if child == 0:
        for _ in range(ROUNDS):
            read_one(ping_r, spin)
            os.write(pong_w, b"x")
        os._exit(0)
    start = time.perf_counter()
    for _ in range(ROUNDS):
        os.write(ping_w, b"x")
        read_one(pong_r, spin)
    elapsed = time.perf_counter() - start
    os.waitpid(child, 0)
    for fd in (ping_r, ping_w, pong_r, pong_w):
        os.close(fd)
    return elapsed / ROUNDS * 1e6


if __name__ == "__main__":
    print("blocking round trip %.1f us" % round_trip(False))
    print("spinning round trip %.1f us" % round_trip(True))
