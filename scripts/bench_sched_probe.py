#!/usr/bin/env python3
"""What this machine does to a woken thread, with nothing of onair's running.

A cyclictest-like probe (issue 12, docs/benchmarks.md "Engine tick lateness in
the capture tests"): one thread sleeps to a 10 ms grid, as onair's engines do,
and records how late each wake-up is. The engines' own lateness cannot be
judged below what this probe sees on the same machine.

Usage: scripts/bench_sched_probe.py [other|fifo] [SECONDS]
  other  an ordinary thread (SCHED_OTHER), as onair's engines are;
  fifo   SCHED_FIFO priority 10 (needs root), the best a thread can ask for.
Prints the sample count and the p50, p99, p99.9 and max lateness in ms.
"""
import os
import sys
import time

PERIOD_S = 0.010


def main() -> None:
    policy = sys.argv[1] if len(sys.argv) > 1 else "other"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 60.0
    if policy == "fifo":
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
    elif policy != "other":
        sys.exit(f"unknown policy {policy!r}: other or fifo")
    late = []
    start = time.monotonic()
    due = start + PERIOD_S
    while time.monotonic() - start < seconds:
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        now = time.monotonic()
        late.append(now - due)
        due += PERIOD_S
        if now - due > PERIOD_S:
            # Like the engines: after a long stall, back to the present grid.
            due = now + PERIOD_S
    late.sort()
    n = len(late)

    def ms(q: float) -> float:
        return late[min(n - 1, int(n * q))] * 1e3

    print(
        f"{policy}: n {n} p50 {ms(0.5):.2f} p99 {ms(0.99):.2f} "
        f"p99.9 {ms(0.999):.2f} max {late[-1] * 1e3:.2f} ms"
    )


if __name__ == "__main__":
    main()
