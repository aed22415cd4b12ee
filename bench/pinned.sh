# Sourced by run.sh and fleet.sh: runs a bench script pinned to CPU 1 under a time
# limit, in a work dir whose processes the EXIT trap ends by id if the script dies
# before its own cleanup.
# Usage: run_pinned SCRIPT LIMIT_SECONDS   (BENCH_TIME_LIMIT overrides the limit)

run_pinned() {
  local script="$1" limit="$2"
  # The work dir (caches, logs, pid file) is made here so the EXIT trap can end, by
  # pid, whatever the script started.
  keep_work="${BENCH_WORK:-}"
  work="${BENCH_WORK:-$(mktemp -d /tmp/pullgate-bench.XXXXXX)}"
  export BENCH_WORK="$work"
  bench_pid=""
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  # The orchestrator and every client it starts stay on CPU 1; servers go on CPU 0.
  taskset -c 1 timeout --signal=TERM --kill-after=30 "${BENCH_TIME_LIMIT:-$limit}" python3 "$script" &
  bench_pid=$!
  wait "$bench_pid"
}

bench_cleanup() {
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
