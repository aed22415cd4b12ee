#!/usr/bin/env bash
# pullgate soak (issue 14): 1,000 keep-alive connections of mixed traffic for 10 minutes,
# policy reloads and verdict changes during it; every answer checked. Loopback only.
# Usage: bash bench/soak.sh [--minutes 10] [--connections 1000] [--rate 500] [--note TEXT]
#        (all of soak.py's flags; PULLGATE_BIN=/path/to/pullgate)
# What it measures and how to read it: bench/README.md, "Soak".
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
export PULLGATE_BIN="${PULLGATE_BIN:-$repo/build/pullgate}"

for tool in taskset timeout python3 /usr/bin/docker-registry; do
  command -v "$tool" >/dev/null || { echo "soak: $tool not found (apt-get install docker-registry)" >&2; exit 2; }
done

# The run is bounded: the load's minutes plus 10 for set-up, the last requests and the report.
minutes=10
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[i]}" in
    --minutes) minutes="${args[i + 1]:-10}" ;;
    --minutes=*) minutes="${args[i]#--minutes=}" ;;
  esac
done
limit="$(python3 -c 'import sys; print(int(float(sys.argv[1]) * 60) + 600)' "$minutes")"

# soak.py reads its flags from SOAK_ARGS too: run_pinned starts it without arguments.
SOAK_ARGS="$(printf '%q ' "$@")"
export SOAK_ARGS
source "$here/pinned.sh"
run_pinned "$here/soak.py" "$limit"
