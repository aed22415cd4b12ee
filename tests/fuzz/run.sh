#!/usr/bin/env bash
# Builds the libFuzzer targets (build-fuzz: clang, ASan+UBSan, only the libraries
# they link) and runs each for SECONDS on a copy of its seed corpus, after replaying
# the inputs that once crashed it (regressions/<target>/). Prints each target's
# executions and coverage; exits non-zero on any crash, naming the input kept.
#   tests/fuzz/run.sh SECONDS [TARGET...]
# PULLGATE_FUZZ_SEED: libFuzzer's -seed, 1 by default so that the suite's short runs
# walk the same mutations every time (a red suite is the change's doing, and a crash
# reproduces); 0 draws a new walk each run, for the long runs by hand.
set -euo pipefail
seconds=${1:?usage: tests/fuzz/run.sh SECONDS [TARGET...]}
shift
cd "$(dirname "$0")/../.."
root=$PWD
here=$root/tests/fuzz
build=$root/build-fuzz

command -v clang++ >/dev/null || { echo "clang++ is missing: deploy/install-deps.sh --test installs it" >&2; exit 1; }
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
CC=clang CXX=clang++ cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF \
  -DPULLGATE_FUZZ=ON "${launcher[@]}" >/dev/null
cmake --build "$build" -j"${PULLGATE_FUZZ_JOBS:-2}" --target fuzz_all

targets=("$@")
if ((${#targets[@]} == 0)); then
  for source in "$here"/fuzz_*.cpp; do targets+=("$(basename "$source" .cpp)"); done
fi

scratch=$(mktemp -d "$build/run.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
crashes=$build/crashes
failed=0
printf '%-24s %12s %8s %8s %s\n' target executions cov ft result
for target in "${targets[@]}"; do
  binary=$build/fuzz/$target
  [[ -x $binary ]] || { echo "$target: no such target (tests/fuzz/$target.cpp)" >&2; exit 2; }
  log=$scratch/$target.log
  # Inputs that crashed once: each must now pass (libFuzzer runs files given by name once).
  regressions=("$here/regressions/$target"/*)
  if [[ -e ${regressions[0]} ]]; then
    if ! "$binary" -timeout=10 -rss_limit_mb=2048 "${regressions[@]}" >"$log" 2>&1; then
      echo "$target: a regression input crashes again:" >&2
      grep -E "Running: |invariant broken|ERROR: |SUMMARY: " "$log" | tail -5 >&2
      failed=1
      continue
    fi
  fi
  corpus=$scratch/corpus/$target
  mkdir -p "$corpus" "$crashes/$target"
  [[ -d $here/corpus/$target ]] && cp -r "$here/corpus/$target/." "$corpus/"
  dict=()
  [[ -f $here/$target.dict ]] && dict=(-dict="$here/$target.dict")
  result=ok
  if ! "$binary" "$corpus" "${dict[@]}" -seed="${PULLGATE_FUZZ_SEED:-1}" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$crashes/$target/" >"$log" 2>&1; then
    result="CRASH: $(grep -oE "(crash|leak|timeout|oom|slow-unit)-[0-9a-f]+" "$log" | tail -1)"
    grep -E "invariant broken|ERROR: |SUMMARY: " "$log" | head -3 >&2 || true
    echo "$target: input kept in $(grep -oE "Test unit written to .*" "$log" | tail -1 | sed 's/^Test unit written to //')" >&2
    failed=1
  fi
  done_line=$(grep -E "^#[0-9]+[[:space:]]+DONE" "$log" | tail -1 || true)
  executions=$(grep -oE "stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" || echo "?")
  cov=$(grep -oE "cov: [0-9]+" <<<"$done_line" | grep -oE "[0-9]+" || echo "?")
  ft=$(grep -oE "ft: [0-9]+" <<<"$done_line" | grep -oE "[0-9]+" || echo "?")
  printf '%-24s %12s %8s %8s %s\n' "$target" "$executions" "$cov" "$ft" "$result"
done
exit $failed
