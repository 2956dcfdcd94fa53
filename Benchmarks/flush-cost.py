#!/usr/bin/env python3
"""What one fdatasync costs on this disk by the number of 4 KiB pages written before it,
scattered over a 200 MiB file (as copy-on-write B-tree pages are) or side by side.
Usage: Benchmarks/flush-cost.py [DIRECTORY]   (default: the system's temporary directory)"""
import os, random, sys, tempfile, time

directory = sys.argv[1] if len(sys.argv) > 1 else tempfile.gettempdir()
path = os.path.join(directory, "flush-cost-%d.bin" % os.getpid())
size, page = 200 << 20, 4096
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
try:
    for offset in range(0, size, 1 << 20):
        os.pwrite(fd, os.urandom(1 << 20), offset)
    os.fsync(fd)
    buffer, pages = os.urandom(page), size // page // 4

    def flush_us(n, scattered, rounds=200):
        start = time.perf_counter()
        for _ in range(rounds):
            if scattered:
                chosen = random.sample(range(pages), n)
            else:
                first = random.randrange(pages - n)
                chosen = range(first, first + n)
            for p in chosen:
                os.pwrite(fd, buffer, p * page)
            os.fdatasync(fd)
        return (time.perf_counter() - start) / rounds * 1e6

    print("pages per flush   scattered   side by side")
    for n in (1, 2, 9, 16, 32, 52, 100):
        print("%15d %9.0f µs %11.0f µs" % (n, flush_us(n, True), flush_us(n, False)))
finally:
    os.close(fd)
    os.unlink(path)
