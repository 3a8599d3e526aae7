#!/usr/bin/env python3
"""Connect-to-first-frame time of one publisher, measured at the server.

Starts the publisher command, then polls nginx-rtmp's recording directory
(nginx writes each tag as it arrives) until a recording holds its first
coded video frame (an FLV video tag with AVCPacketType 1). Prints the
seconds from the command's start to then, and stops the publisher.

Why at the server: what a viewer waits for is the first frame reaching the
ingest, whatever the publisher does first (start its encoder, resolve,
connect, TLS, RTMP handshake, publish).

Usage: bench_tls_first_frame.py RECORD_DIR TIMEOUT_S -- COMMAND...
"""

import os
import signal
import subprocess
import sys
import time


def first_coded_video(path):
    """True once the FLV file at `path` holds a coded video frame."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return False
    if len(data) < 13 or data[:3] != b"FLV":
        return False
    i = 13
    while i + 11 <= len(data):
        kind = data[i] & 0x1F
        size = int.from_bytes(data[i + 1 : i + 4], "big")
        if i + 11 + size > len(data):
            return False
        body = data[i + 11 : i + 11 + size]
        if kind == 9 and len(body) >= 2 and body[1] == 1:
            return True
        i += 11 + size + 4
    return False


def main():
    rec_dir, timeout = sys.argv[1], float(sys.argv[2])
    cmd = sys.argv[sys.argv.index("--") + 1 :]
    before = set(os.listdir(rec_dir))
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    took = None
    try:
        while time.monotonic() - t0 < timeout:
            new = [n for n in os.listdir(rec_dir) if n not in before and n.endswith(".flv")]
            if any(first_coded_video(os.path.join(rec_dir, n)) for n in new):
                took = time.monotonic() - t0
                break
            if proc.poll() is not None:
                break
            time.sleep(0.001)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    if took is None:
        print("no frame", file=sys.stderr)
        sys.exit(1)
    print(f"{took:.4f}")


if __name__ == "__main__":
    main()
