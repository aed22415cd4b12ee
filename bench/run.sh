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

# The work dir (image, caches, logs, pid file) is made here so the EXIT trap can
# end, by pid, whatever bench.py started if it dies before its own cleanup.
keep_work="${BENCH_WORK:-}"
work="${BENCH_WORK:-$(mktemp -d /tmp/pullgate-bench.XXXXXX)}"
export BENCH_WORK="$work"
bench_pid=""

cleanup() {
  local rc=$?
  if [ -n "$bench_pid" ] && kill -0 "$bench_pid" 2>/dev/null; then
    kill -TERM "$bench_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$bench_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$bench_pid" 2>/dev/null || true
  fi
  if [ -f "$work/pids" ]; then
    while read -r pid; do
      [ -n "$pid" ] || continue
      # Each server runs in its own process group led by the pid recorded.
      kill -TERM -- "-$pid" 2>/dev/null || true
    done < "$work/pids"
    sleep 0.5
    while read -r pid; do
      [ -n "$pid" ] || continue
      kill -KILL -- "-$pid" 2>/dev/null || true
    done < "$work/pids"
  fi
  if [ -z "$keep_work" ] && [ "${BENCH_KEEP:-0}" = "0" ]; then
    rm -rf "$work"
  else
    echo "bench: work dir kept: $work" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The orchestrator and every client it starts stay on CPU 1; servers go on CPU 0.
# The whole run is bounded: 60 min full, 20 min quick.
limit=3600
[ "${BENCH_QUICK:-0}" != "0" ] && limit=1200
taskset -c 1 timeout --signal=TERM --kill-after=30 "${BENCH_TIME_LIMIT:-$limit}" \
  python3 "$here/bench.py" &
bench_pid=$!
wait "$bench_pid"
