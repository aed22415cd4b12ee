#!/usr/bin/env bash
# Installs what the tests need, builds, and runs the whole suite (unit tests and
# integration tests against a real upstream registry and real clients).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh --test
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=ON >/dev/null
cmake --build build -j"$(nproc)"
ctest --test-dir build --output-on-failure -j"$(nproc)" --timeout 900
