#!/usr/bin/env python3
"""The test executables of a `cargo test --no-run --message-format=json` run.

Why: scripts/test.sh builds every test binary first, then runs the binaries
themselves in its lanes instead of `cargo test`: the GPL build links its own
`onair` at the path cargo gives both builds, so each binary is run with the
`onair` it tests named in ONAIR_EXE, and no cargo command can relink or
rebuild anything in the middle of the real-time tests.

Reads cargo's JSON messages on stdin; prints one line per test executable, in
cargo's order: KIND<TAB>PACKAGE_DIR<TAB>EXECUTABLE<TAB>NAME, where KIND is the
target kind (lib for any library, bin, test), PACKAGE_DIR the directory cargo runs it from (its
package's) and NAME the target's name. Exits 1 when there is none.
"""

import json
import os
import sys

LIBRARY_KINDS = {"lib", "rlib", "dylib", "cdylib", "staticlib", "proc-macro"}


def main() -> int:
    rows = []
    for line in sys.stdin:
        line = line.strip()
        if not line.startswith("{"):
            continue
        msg = json.loads(line)
        if msg.get("reason") != "compiler-artifact" or not msg.get("executable"):
            continue
        if not msg["profile"]["test"]:
            continue
        target = msg["target"]
        # A library's unit tests are "lib" whatever it builds (cdylib, rlib).
        kind = "lib" if set(target["kind"]) & LIBRARY_KINDS else target["kind"][0]
        rows.append(
            (
                kind,
                os.path.dirname(msg["manifest_path"]),
                msg["executable"],
                target["name"],
            )
        )
    if not rows:
        print("test_binaries: cargo reported no test executable", file=sys.stderr)
        return 1
    for row in rows:
        print("\t".join(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
