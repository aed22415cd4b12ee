#!/usr/bin/env bash
# pullgate fleet benchmark (issue 12): revocation latency across three replicas sharing
# a 3-member etcd, and warm req/s with the fleet store on vs off. Loopback only.
# Usage: bash bench/fleet.sh     (about 5 minutes; PULLGATE_BIN=/path/to/pullgate)
# What it measures and the knobs: bench/README.md, "Fleet".
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
export PULLGATE_BIN="${PULLGATE_BIN:-$repo/build/pullgate}"

for tool in taskset timeout wrk curl python3 /usr/bin/docker-registry /usr/bin/etcd; do
  command -v "$tool" >/dev/null || { echo "bench: $tool not found (apt-get install wrk curl docker-registry etcd-server)" >&2; exit 2; }
done
if [ "$(nproc)" -lt 2 ]; then
  echo "bench: needs 2 CPUs (replicas on 0, etcd and clients on 1); this machine has $(nproc)" >&2
  exit 2
fi

# Replicas go on CPU 0; this script, its clients, etcd and the upstream on CPU 1.
source "$here/pinned.sh"
run_pinned "$here/fleet.py" 1200
