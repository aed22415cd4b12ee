#!/usr/bin/env bash
# The suite under sanitizers, one command:
#   tests/sanitize.sh            ASan+UBSan (build-sanitize/): every unit test and every
#                                integration test, with pullgate itself sanitized; then
#                                TSan (build-tsan/): the unit tests of the parts that
#                                run on several threads at once
#   tests/sanitize.sh --unit     ASan+UBSan unit tests only
#   tests/sanitize.sh --tsan     the TSan part only
#   PULLGATE_SANITIZE_TESTS=REGEX  a ctest -R filter for the ASan+UBSan part
# Exits non-zero on any failed test or any sanitizer report, printing the reports.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
mode=${1:-all}
case $mode in all | --unit | --tsan) ;; *) echo "usage: tests/sanitize.sh [--unit|--tsan]" >&2; exit 2 ;; esac
jobs=${PULLGATE_SANITIZE_JOBS:-$(nproc)}
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
unit_targets=(registry_tests cache_tests policy_tests proxy_tests)

# A report ends the process (abort_on_error, halt_on_error: a test fails on it) and is
# also written under $1, whichever process made it: the pullgate an integration test
# starts writes its stderr to a file that not every test reads, so the script looks
# there itself after the run.
reports_in() {
  rm -rf "$1" && mkdir -p "$1"
  chmod 1777 "$1"  # a pullgate a test runs as another user (test_systemd_units) writes here too
  export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1:strict_init_order=1:log_path=$1/report"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:log_path=$1/report"
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:log_path=$1/report"
  # Tests that cannot run under a sanitizer skip themselves, saying why.
  export PULLGATE_SANITIZED_RUN=1
  # What is suppressed, and why it is safe, is said in each file (tests/sanitizers/).
  local tool
  for tool in asan lsan tsan ubsan; do
    local options=${tool^^}_OPTIONS
    [[ -f $root/tests/sanitizers/$tool.supp ]] &&
      export "$options=${!options:+${!options}:}suppressions=$root/tests/sanitizers/$tool.supp"
  done
  return 0
}
check_reports() {
  local files=("$1"/*)
  [[ -e ${files[0]} ]] || return 0
  echo "sanitizer reports (${#files[@]}) in $1:" >&2
  for f in "${files[@]}"; do echo "--- $f" >&2; head -60 "$f" >&2; done
  return 1
}

failed=0
if [[ $mode != --tsan ]]; then
  # clang: gcc 12 with UBSan takes more than twice as long on the Asio coroutine code
  # (registry/upstream_connection.cpp: clang 2.8 CPU-minutes, gcc over 5.5).
  command -v clang++ >/dev/null || { echo "clang++ is missing: deploy/install-deps.sh --test installs it" >&2; exit 1; }
  CC=clang CXX=clang++ cmake -S . -B build-sanitize -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON \
    -DPULLGATE_SANITIZE=address,undefined "${launcher[@]}" >/dev/null
  targets=("${unit_targets[@]}" pullgate)  # ctest's integration tests run this pullgate
  ctest_args=(--test-dir build-sanitize --output-on-failure -j"$jobs" --timeout 1800)
  if [[ $mode == --unit ]]; then
    # Only the unit tests: the rooms' include checks and the integration tests out.
    ctest_args+=(-E "^(integration|rooms)\\.")
  fi
  [[ -n ${PULLGATE_SANITIZE_TESTS:-} ]] && ctest_args+=(-R "$PULLGATE_SANITIZE_TESTS")
  # One target at a time: make given several goals builds what they share twice at
  # once (a test binary linked while gtest_discover_tests runs it: "Text file busy").
  for target in "${targets[@]}"; do cmake --build build-sanitize -j"$jobs" --target "$target"; done
  reports_in "$root/build-sanitize/sanitizer-reports"
  ctest "${ctest_args[@]}" || failed=1
  check_reports "$root/build-sanitize/sanitizer-reports" || failed=1
fi

if [[ $mode != --unit ]]; then
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON \
    -DPULLGATE_SANITIZE=thread "${launcher[@]}" >/dev/null
  for target in cache_tests proxy_tests; do cmake --build build-tsan -j"$jobs" --target "$target"; done
  reports_in "$root/build-tsan/sanitizer-reports"
  # The parts that share state between threads: single flight and the blob fill with
  # its followers, the hot cache, the fleet's etcd watch and its policy, the periodic
  # jobs; the gate's per-thread memo and its audit, the audit writer, metrics.
  build-tsan/tests/cache_tests \
    --gtest_filter='SingleFlight.*:BlobFill.*:BlobFetchTest.*:HotCache.*:FleetTest.*:EtcdTest.*:Periodic.*:PullTimes*' ||
    failed=1
  build-tsan/tests/proxy_tests \
    --gtest_filter='GateMemoTest.*:GateAuditFull.*:AuditLogTest.*:FleetPolicy.*:Metrics.*:RecentDecisions.*:UpstreamHealth.*' ||
    failed=1
  check_reports "$root/build-tsan/sanitizer-reports" || failed=1
fi
exit $failed
