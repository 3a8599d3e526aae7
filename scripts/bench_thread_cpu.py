#!/usr/bin/env python3
"""CPU seconds of one named thread of a running process, sampled until it exits.

Finds the process whose command line contains MARK (e.g. a unique stream
key), then reads /proc/PID/task/*/stat every 200 ms and keeps the last
utime+stime of the threads named THREAD. Prints that, in seconds.

Why: onair's TLS work (encryption, records) happens on its send thread
("onair-send"); the encoders' CPU dwarfs it in the process total, and their
run-to-run noise hides it there.

Usage: bench_thread_cpu.py MARK THREAD TIMEOUT_S
"""

import os
import sys
import time

TICK = os.sysconf("SC_CLK_TCK")


def find(mark):
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if cmd and os.path.basename(cmd[0]) == b"onair" and any(mark.encode() in a for a in cmd):
            return pid
    return None


def thread_ticks(pid, name):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/stat") as f:
            stat = f.read()
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        if comm == name:
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total


def main():
    mark, name, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    t0 = time.monotonic()
    pid = None
    while pid is None and time.monotonic() - t0 < timeout:
        pid = find(mark)
        time.sleep(0.05)
    if pid is None:
        sys.exit("process not found")
    last = 0
    while True:
        try:
            last = max(last, thread_ticks(pid, name))
        except (OSError, ValueError):
            break
        time.sleep(0.2)
    print(f"{last / TICK:.2f}")


if __name__ == "__main__":
    main()
