#!/usr/bin/env bash
# Installs what is missing, builds, and starts the mirror on its default config:
# port 5000, cache in ./pullgate-data, Docker Hub as the upstream. Extra arguments
# go to `pullgate serve` (see `build/pullgate serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
cmake --build build -j"$(nproc)" --target pullgate
exec build/pullgate serve "$@"
