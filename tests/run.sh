#!/usr/bin/env bash
# Installs what the tests need, builds, and runs the whole suite (unit tests and
# integration tests against a real upstream registry and real clients).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh --test
# The unit tests under AddressSanitizer and UndefinedBehaviorSanitizer (clang,
# build-sanitize/; the whole sanitized suite is tests/sanitize.sh without --unit). Its
# pullgate is also the one the integration tests that check shutdown and other
# lifetimes run (PULLGATE_SANITIZED_BIN).
tests/sanitize.sh --unit
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON \
  -DPULLGATE_SANITIZED_BIN="$PWD/build-sanitize/pullgate" >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900
# The libFuzzer targets, 5 s each (tests/fuzz/README.md; a long run is by hand).
PULLGATE_FUZZ_JOBS="$(nproc)" tests/fuzz/run.sh 5
