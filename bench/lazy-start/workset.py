#!/usr/bin/env python3
"""The working set of the lazy-start benchmark: which files a container start reads, and reading them.

    workset.py pick SRC --seed N --percent P > LIST
    workset.py read ROOT LIST [--verify SRC]

pick: a fixed, seeded P % of the regular files under SRC (by count; empty files and links left
out), in the order a start reads them: packages (the directories) in a seeded random order, and the
files of one package in name order, as an interpreter importing module by module does (Slacker,
FAST'16: a start reads 6.4 % of its image). LIST has one `SIZE<TAB>PATH` line per file, PATH
relative to SRC; the last line is `# files=N bytes=B blocks=K` (K: the 4 KiB blocks those files
occupy, what a block-granular fetcher must move at least).

read: reads every file of LIST under ROOT whole, in order, with one reader (1 MiB reads), and prints
`files=N bytes=B secs=S`. --verify SRC compares every file with its original (after the timing).
Exit 1 when a file is short, missing or (with --verify) differs.
"""
import argparse
import os
import random
import sys
import time


def pick(a):
    by_dir = {}
    for d, dirs, files in os.walk(a.src):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(d, f)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            size = os.path.getsize(p)
            if size == 0:
                continue
            by_dir.setdefault(os.path.relpath(d, a.src), []).append((os.path.relpath(p, a.src), size))
    everything = [f for d in sorted(by_dir) for f in by_dir[d]]
    rng = random.Random(a.seed)
    chosen = set(rng.sample(range(len(everything)), max(1, len(everything) * a.percent // 100)))
    picked = {}
    for i, (path, size) in enumerate(everything):
        if i in chosen:
            picked.setdefault(os.path.dirname(path), []).append((path, size))
    order = sorted(picked)
    rng.shuffle(order)
    total = blocks = n = 0
    for d in order:
        for path, size in picked[d]:
            print("%d\t%s" % (size, path))
            total += size
            blocks += (size + 4095) // 4096
            n += 1
    print("# files=%d bytes=%d blocks=%d all_files=%d" % (n, total, blocks, len(everything)))


def read(a):
    entries = []
    with open(a.list) as f:
        for line in f:
            if line.startswith("#"):
                continue
            size, path = line.rstrip("\n").split("\t", 1)
            entries.append((int(size), path))
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    total = 0
    t0 = time.monotonic()
    for size, path in entries:
        got = 0
        with open(os.path.join(a.root, path), "rb", buffering=0) as f:
            while True:
                n = f.readinto(view)
                if not n:
                    break
                got += n
        if got != size:
            print("workset.py: %s: read %d bytes, expected %d" % (path, got, size), file=sys.stderr)
            sys.exit(1)
        total += got
    secs = time.monotonic() - t0
    if a.verify:
        for size, path in entries:
            with open(os.path.join(a.root, path), "rb") as x, open(os.path.join(a.verify, path), "rb") as y:
                if x.read() != y.read():
                    print("workset.py: %s differs from %s" % (path, os.path.join(a.verify, path)), file=sys.stderr)
                    sys.exit(1)
    print("files=%d bytes=%d secs=%.4f" % (len(entries), total, secs))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pick")
    p.add_argument("src")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--percent", type=int, default=10)
    r = sub.add_parser("read")
    r.add_argument("root")
    r.add_argument("list")
    r.add_argument("--verify")
    a = ap.parse_args()
    pick(a) if a.cmd == "pick" else read(a)


if __name__ == "__main__":
    main()
