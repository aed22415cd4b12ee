#!/usr/bin/env bash
# Installs the Debian 12 packages pullgate needs, only those missing.
#   deploy/install-deps.sh          build and run
#   deploy/install-deps.sh --test   build, run, and the test suite's real components
set -euo pipefail
# libpsl: the Public Suffix List, which decides where upstream credentials may go;
# publicsuffix: the list's newer copy, which libpsl prefers to its compiled-in one;
# libtomlplusplus-dev: TOML for `pullgate doctor` (header-only, nothing at run time).
packages=(build-essential cmake pkg-config libboost1.81-all-dev libssl-dev liblmdb-dev nlohmann-json3-dev
          libpsl-dev publicsuffix libtomlplusplus-dev)
if [[ "${1:-}" == "--test" ]]; then
  # googletest for unit tests; a real upstream registry (CNCF Distribution), real
  # clients (skopeo, podman, containerd/ctr), openssl for test certificates and tokens,
  # promtool (prometheus) to check /metrics; Google Benchmark and prometheus-cpp for
  # bench/metrics_bench.cpp, built with the tests; etcd (server and etcdctl) for the
  # fleet store and nginx to balance clients across replicas; systemd (systemd-analyze)
  # and strace to check the shipped units; umoci to build and unpack the image
  # (deploy/image), kubectl (kubernetes-client) to render the kustomize trees and
  # python3-yaml to read what it renders, and chromium to look at the status page;
  # clang with libFuzzer and the sanitizer runtimes (libclang-rt-14-dev, only
  # recommended by clang) for tests/fuzz.
  packages+=(googletest libgtest-dev python3 docker-registry skopeo podman containerd openssl curl ca-certificates
             prometheus libbenchmark-dev prometheus-cpp-dev etcd-server etcd-client nginx-light systemd strace
             umoci chromium python3-yaml clang libclang-rt-14-dev)
  # Debian's kubectl (kubernetes-client, 1.20) only where no kubectl is installed:
  # a newer one from another package owns /usr/bin/kubectl and the two conflict.
  command -v kubectl >/dev/null || packages+=(kubernetes-client)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}" >&2
  sudo_cmd=(); [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
