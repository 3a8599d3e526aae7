#!/usr/bin/env bash
# Fault numbers for docs/benchmarks.md: runs the fault tests (real nginx-rtmp,
# fault proxy, kernel faults in a private network namespace when root) with
# their measurements printed, plus the FFmpeg CLI under the same faults.
#   scripts/bench-faults.sh          # ~4 min
#   scripts/bench-faults.sh --soak   # + 10-minute dead-link memory soak
# Results go to stdout and target/bench-faults.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
./scripts/install-deps.sh
filter='^(reset|restart|dead link|pause|throttle|kernel|rejected|ffmpeg CLI|soak)'
args=(--include-ignored --nocapture --test-threads 1)
if [[ "${1:-}" != "--soak" ]]; then
    args+=(--skip soak)
fi
cargo test --release -p onair --test faults -- "${args[@]}" 2>&1 \
    | tee target/bench-faults.log | grep -E "$filter" | tee target/bench-faults.txt
