#!/usr/bin/env bash
# Installs what is missing, builds, and starts the mirror on its default config:
# port 5000, cache in ./pullgate-data, Docker Hub as the upstream, and the example
# policy (deploy/example-policy.json) unless given another. Extra arguments go to
# `pullgate serve` (see `build/pullgate serve --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF >/dev/null
cmake --build build -j"$(nproc)" --target pullgate
# Without a policy of the caller's (--policy, or --config naming gate.policy_file),
# the mirror starts with deploy/example-policy.json: a gate that visibly refuses
# something, rather than the built-in allow-all policy, which refuses nothing.
own_policy=no
for arg in "$@"; do [[ "$arg" == --policy || "$arg" == --config ]] && own_policy=yes; done
if [[ $own_policy == no ]]; then
  set -- --policy deploy/example-policy.json "$@"
  cat >&2 <<'HOW'
pullgate: starting with the example policy deploy/example-policy.json (it refuses Ubuntu
  releases before 20.04 and CentOS, warns on :latest). See it at work, from another terminal:
    skopeo inspect --tls-verify=false docker://127.0.0.1:5000/library/ubuntu:18.04   # refused, with the reason
    skopeo inspect --tls-verify=false docker://127.0.0.1:5000/library/ubuntu:24.04   # served
    build/pullgate explain docker.io/library/ubuntu:18.04 --data pullgate-data      # why
  Change it: edit the file, then `pkill -HUP -x pullgate`; or run deploy/run.sh --policy FILE.
HOW
fi
exec build/pullgate serve "$@"
