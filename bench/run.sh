#!/usr/bin/env bash
# pullgate benchmark: pullgate vs Distribution (proxy mode) vs nginx, on 127.0.0.1 only.
# Usage: bash bench/run.sh            full run (1 GiB blob, 3 runs per wrk figure)
#        BENCH_QUICK=1 bash bench/run.sh   quick run (256 MiB blob, 1 run)
# Other knobs and how to read the table: bench/README.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
export PULLGATE_BIN="${PULLGATE_BIN:-$repo/build/pullgate}"

for tool in taskset timeout wrk curl cc python3 /usr/bin/docker-registry /usr/sbin/nginx; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (apt-get install wrk curl docker-registry nginx-light)" >&2; exit 2; }
done
if [ "$(nproc)" -lt 2 ]; then
  echo "bench: needs 2 CPUs (server on 0, clients on 1); this machine has $(nproc)" >&2
  exit 2
fi

# The whole run is bounded: 60 min full, 20 min quick.
limit=3600
[ "${BENCH_QUICK:-0}" != "0" ] && limit=1200
source "$here/pinned.sh"
run_pinned "$here/bench.py" "$limit"
