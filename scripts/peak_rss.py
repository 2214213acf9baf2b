#!/usr/bin/env python3
"""Runs a command and reports its wall time and the peak resident memory of
its whole process tree (a JVM that Spark's Python driver starts included),
sampled every 0.1 s from /proc.

    scripts/peak_rss.py COMMAND [ARGS...]
"""

import os
import subprocess
import sys
import time


def tree_rss_kib(root):
    children = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(pid))
        except (OSError, ValueError, IndexError):
            pass
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def main():
    started = time.monotonic()
    proc = subprocess.Popen(sys.argv[1:])
    peak = 0
    while proc.poll() is None:
        peak = max(peak, tree_rss_kib(proc.pid))
        time.sleep(0.1)
    wall = time.monotonic() - started
    print(f"peak_rss: {wall:.1f} s wall, peak RSS {peak / 1024:.0f} MiB, exit {proc.returncode}: {' '.join(sys.argv[1:])}", file=sys.stderr)
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main()
