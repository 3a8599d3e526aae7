# shellcheck shell=bash
# How the benchmarks measure CPU (sourced by bench-capture.sh, bench-stream.sh, bench-tls.sh):
# user+sys seconds from GNU time, per streamed minute, with the load average beside them.
# Why user+sys: the machine may be shared, so wall time is not a measure of cost; the load
# says how shared it was. The sourcing script defines die().

# GNU time, and the fields every benchmark reads from its output file: user s, sys s,
# wall s, max RSS KiB. Run a command as `"$CPU_TIME" -f "$CPU_TIME_FORMAT" -o FILE CMD...`
# (a plain command, not a function: a background one keeps its own pid for the cleanup).
CPU_TIME=/usr/bin/time
CPU_TIME_FORMAT='%U %S %e %M'

# Fails unless GNU time is installed.
cpu_require() { [ -x "$CPU_TIME" ] || die "$CPU_TIME missing (apt-get install time)"; }

# cpu_fields FILE: "U S E M" from a GNU time output file (its last line: a command that
# exited non-zero adds a line before it).
cpu_fields() { tail -n1 "$1"; }

# cpu_per_minute U S SECONDS: CPU seconds (user+sys) per minute of a run of SECONDS.
cpu_per_minute() { awk -v u="$1" -v s="$2" -v d="$3" 'BEGIN {printf "%.2f", (u+s)*60/d}'; }

# load: the 1, 5 and 15 minute load averages.
load() { uptime | sed 's/.*load average: //'; }
