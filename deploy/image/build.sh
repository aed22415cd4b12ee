#!/usr/bin/env bash
# Builds pullgate's two OCI images from files Debian ships, with umoci, reproducibly:
#   localhost/pullgate:<version>          the mirror: the stripped binary, exactly the
#                                         shared libraries it loads, CA certificates, the
#                                         Public Suffix List, a non-root user. No shell.
#   localhost/pullgate-scanner:<version>  the scan worker: Debian's Python 3 (interpreter
#                                         and standard library), the worker, and trivy
#                                         when --trivy names one (Debian has no trivy).
# Output: one OCI image layout per image, OUT/pullgate and OUT/pullgate-scanner, each
# tagged <version>. deploy/image/README.md says how to load them and what is inside.
#
#   deploy/image/build.sh [--binary build/pullgate] [--out build/image/oci] [--trivy PATH]
#   deploy/image/build.sh --print-refs
#
# Same inputs, same digests: every timestamp is SOURCE_DATE_EPOCH (default: the last
# commit's time), files are owned by root except the data directories, and umoci writes
# its layer tar in name order with gzip headers that carry no time. Inputs are the
# binary, this checkout's deploy files, the installed Debian packages the files come
# from, and umoci's version.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
version=$(sed -n 's/^project(pullgate VERSION \([0-9][0-9.]*\).*/\1/p' "$repo/CMakeLists.txt")
[[ -n "$version" ]] || { echo "build.sh: no project(pullgate VERSION x.y.z) in $repo/CMakeLists.txt" >&2; exit 2; }

binary="$repo/build/pullgate"
out="$repo/build/image/oci"
trivy=""
while (($#)); do
  case "$1" in
    --print-refs) printf 'localhost/pullgate:%s\nlocalhost/pullgate-scanner:%s\n' "$version" "$version"; exit 0 ;;
    --binary) binary="${2:?--binary needs a path}"; shift 2 ;;
    --out) out="${2:?--out needs a directory}"; shift 2 ;;
    --trivy) trivy="${2:?--trivy needs a path}"; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

fail() { echo "build.sh: $*" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || fail "run as root: umoci records each file's owner from disk, and the data directories must belong to uid 65532"
for tool in umoci ldd strip dpkg-query python3; do
  command -v "$tool" >/dev/null || fail "$tool is missing (deploy/install-deps.sh --test installs umoci)"
done
[[ -x "$binary" ]] || fail "no pullgate binary at $binary (build it, or pass --binary PATH)"
if [[ -n "$trivy" ]]; then [[ -x "$trivy" ]] || fail "--trivy $trivy is not an executable"; fi

if [[ -z "${SOURCE_DATE_EPOCH:-}" ]]; then
  SOURCE_DATE_EPOCH=$(git -C "$repo" log -1 --format=%ct 2>/dev/null) ||
    fail "SOURCE_DATE_EPOCH is unset and $repo is not a git checkout to take the last commit's time from"
fi
[[ "$SOURCE_DATE_EPOCH" =~ ^[0-9]+$ ]] || fail "SOURCE_DATE_EPOCH must be seconds since the epoch, got $SOURCE_DATE_EPOCH"
export SOURCE_DATE_EPOCH
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
revision=$(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)

# The image's one non-root user, as distroless names its own (65532).
uid=65532
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"

# --- the root file system, file by file ---------------------------------------------

declare -A packages=()
noted=()

# Remembers that PATH comes from a Debian package: put_package_records asks dpkg which
# one, for its copyright file and the status.d entry that lets scanners (trivy) see
# what the image holds.
note_package() { noted+=("$1"); }
# Copies SRC's content (symlinks followed) to ROOT/DEST with MODE.
put() {
  local root=$1 src=$2 dest=$3 mode=${4:-0644}
  install -D -m "$mode" "$src" "$root$dest"
}

# The shared libraries the ELF files load (ldd: the whole closure) and the dynamic
# loader, each at its path on this Debian (the directory resolved through the
# /lib -> usr/lib link), under the name the loader looks for. Static files need none.
put_libraries() {
  local root=$1 elf line path dest; shift
  declare -A wanted=()
  for elf in "$@"; do
    ldd "$elf" >"$work/ldd" 2>&1 || { grep -q "not a dynamic executable" "$work/ldd" && continue; fail "ldd $elf: $(cat "$work/ldd")"; }
    while read -r line; do
      case "$line" in
        linux-vdso*|*"statically linked"*) continue ;;
        *"=> not found"*) fail "ldd $elf: $line" ;;
        *"=> "*) path=${line#*=> }; path=${path%% (*} ;;
        *) path=${line%% (*} ;;
      esac
      wanted[$path]=1
    done <"$work/ldd"
  done
  for path in $(printf '%s\n' "${!wanted[@]}" | LC_ALL=C sort); do
    dest="$(realpath "$(dirname "$path")")/$(basename "$path")"
    [[ -e "$root$dest" ]] && continue
    # Debian's modes: the loader must stay executable for the kernel to run it.
    put "$root" "$path" "$dest" "$(stat -L -c %a "$path")"
    note_package "$path"
  done
}

# What every image holds: Debian's merged-/usr links (the loader's path is
# /lib64/ld-linux-x86-64.so.2), users, name service, CA certificates where OpenSSL's
# default paths find them, /tmp.
put_base() {
  local root=$1 home=$2 link
  mkdir -p "$root/usr/bin" "$root/usr/lib" "$root/etc/ssl/certs" "$root/usr/lib/ssl"
  for link in bin lib lib64 sbin; do
    if [[ -L "/$link" ]]; then mkdir -p "$root/$(readlink "/$link")"; ln -sfn "$(readlink "/$link")" "$root/$link"; fi
  done
  printf 'root:x:0:0:root:/root:/usr/sbin/nologin\npullgate:x:%d:%d:pullgate:%s:/usr/sbin/nologin\n' \
    "$uid" "$uid" "$home" >"$root/etc/passwd"
  printf 'root:x:0:\npullgate:x:%d:\n' "$uid" >"$root/etc/group"
  # glibc 2.36 has files and dns built in; without this file it would ask DNS first.
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
  put "$root" /usr/lib/os-release /usr/lib/os-release
  ln -sfn ../usr/lib/os-release "$root/etc/os-release"
  note_package /usr/lib/os-release
  # OpenSSL's default verify paths (OPENSSLDIR=/usr/lib/ssl on Debian), as
  # ca-certificates and libssl3 lay them out: set_default_verify_paths() in the
  # upstream client, the etcd client and Python's ssl all read them.
  # The bundle is made here from the ca-certificates package's Mozilla set, not copied
  # from this host's, which may hold local CAs (/usr/local/share/ca-certificates): a
  # private upstream's CA goes in the config (upstreams[].ca_file) instead.
  cat $(find /usr/share/ca-certificates/mozilla -name '*.crt' | LC_ALL=C sort) >"$work/ca-certificates.crt"
  [[ -s "$work/ca-certificates.crt" ]] || fail "no CA certificates in /usr/share/ca-certificates/mozilla (apt-get install ca-certificates)"
  put "$root" "$work/ca-certificates.crt" /etc/ssl/certs/ca-certificates.crt
  packages[ca-certificates]=1
  ln -sfn /etc/ssl/certs/ca-certificates.crt "$root/usr/lib/ssl/cert.pem"
  ln -sfn /etc/ssl/certs "$root/usr/lib/ssl/certs"
  mkdir -p "$root/tmp"; chmod 1777 "$root/tmp"
}

# Copyright files and dpkg status entries of the packages the files came from
# (distroless' /var/lib/dpkg/status.d layout, which trivy reads).
put_package_records() {
  local root=$1 pkg path line
  # One dpkg-query for all (each call reads the whole database). bookworm's database
  # names many files by their /lib path, others by /usr/lib: ask for both.
  declare -A owner=()
  if ((${#noted[@]})); then
    while read -r line; do
      for pkg in $(echo "${line%%: /*}" | tr ',' ' '); do owner[${line#*: }]+=" ${pkg%%:*}"; done
    done < <(for path in "${noted[@]}"; do echo "$path"; realpath "$path"; done | LC_ALL=C sort -u |
               xargs dpkg-query -S 2>/dev/null || true)
  fi
  for path in "${noted[@]}"; do
    line="${owner[$path]:-}${owner[$(realpath "$path")]:-}"
    [[ -n "$line" ]] || fail "$path belongs to no installed Debian package"
    for pkg in $line; do packages[$pkg]=1; done
  done
  mkdir -p "$root/var/lib/dpkg/status.d"
  for pkg in $(printf '%s\n' "${!packages[@]}" | LC_ALL=C sort); do
    dpkg-query -s "$pkg" | grep -v '^Status:' >"$root/var/lib/dpkg/status.d/$pkg"
    if [[ -f "/usr/share/doc/$pkg/copyright" ]]; then
      put "$root" "/usr/share/doc/$pkg/copyright" "/usr/share/doc/$pkg/copyright"
    fi
  done
}

# --- image assembly with umoci -------------------------------------------------------

# make_image NAME ROOTFS_FILLER [umoci config arguments...]: a fresh layout OUT/NAME
# with one layer and the tag <version>.
make_image() {
  local name=$1 filler=$2; shift 2
  local layout="$out/$name" bundle="$work/$name"
  rm -rf "$layout"
  umoci init --layout "$layout"
  umoci new --image "$layout:$version"
  umoci unpack --image "$layout:$version" "$bundle" >/dev/null
  packages=(); noted=()
  "$filler" "$bundle/rootfs"
  put_package_records "$bundle/rootfs"
  # Time and order are the only things left that differ between two builds.
  find "$bundle/rootfs" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
  umoci repack --image "$layout:$version" --history.created "$created" \
    --history.created_by "deploy/image/build.sh ($name $version)" "$bundle" >/dev/null
  umoci config --image "$layout:$version" --no-history --created "$created" \
    --config.user "$uid:$uid" --config.workingdir / \
    --config.label "org.opencontainers.image.title=$name" \
    --config.label "org.opencontainers.image.version=$version" \
    --config.label "org.opencontainers.image.revision=$revision" \
    --config.label "org.opencontainers.image.created=$created" \
    "$@"
  umoci gc --layout "$layout"
  report "$name" "$layout" "$bundle/rootfs"
  rm -rf "$bundle"
}

report() {
  python3 - "$1" "$2" "$3" "$version" <<'EOF'
import json, os, sys
name, layout, rootfs, version = sys.argv[1:]
def blob(digest):
    return os.path.join(layout, "blobs", *digest.split(":", 1))
entry = json.load(open(os.path.join(layout, "index.json")))["manifests"][0]
manifest = json.load(open(blob(entry["digest"])))
compressed = entry["size"] + manifest["config"]["size"] + sum(l["size"] for l in manifest["layers"])
unpacked = 0
for d, dirs, files in os.walk(rootfs):
    for f in files:
        st = os.lstat(os.path.join(d, f))
        unpacked += st.st_size
print("%s:%s  %s  compressed %.1f MiB, unpacked %.1f MiB  (oci:%s:%s)" % (
    "localhost/" + name, version, entry["digest"], compressed / 2**20, unpacked / 2**20, layout, version))
EOF
}

pullgate_root() {
  local root=$1
  put_base "$root" /var/lib/pullgate
  # Stripped: symbols are half the binary; the build keeps them in build/pullgate.
  strip --strip-all -o "$work/pullgate.stripped" "$binary"
  put "$root" "$work/pullgate.stripped" /usr/bin/pullgate 0755
  put_libraries "$root" "$binary"
  # psl_latest() reads this file when it is newer than libpsl's compiled-in list: the
  # registrable domain decides which hosts an upstream's credentials may go to.
  put "$root" /usr/share/publicsuffix/public_suffix_list.dafsa /usr/share/publicsuffix/public_suffix_list.dafsa
  note_package /usr/share/publicsuffix/public_suffix_list.dafsa
  put "$root" "$here/pullgate.json" /etc/pullgate/pullgate.json
  put "$root" "$repo/deploy/systemd/policy.json" /etc/pullgate/policy.json
  mkdir -p "$root/var/lib/pullgate"
  chown "$uid:$uid" "$root/var/lib/pullgate"; chmod 0750 "$root/var/lib/pullgate"
}

# Debian's Python: whole packages as dpkg installed them (interpreter, the standard
# library with its C modules), not a guess of which modules the worker imports.
python_packages=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib python3-minimal)

scanner_root() {
  local root=$1 pkg elves
  put_base "$root" /var/cache/pullgate-scan-worker
  for pkg in "${python_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
      fail "the scanner image needs Debian's $pkg installed (apt-get install python3-minimal libpython3.11-stdlib)"
    packages[$pkg]=1
  done
  # One tar for the ~1500 files (a fork per file takes minutes on a busy machine);
  # symlinks stay links, modes stay Debian's.
  dpkg-query -L "${python_packages[@]}" | LC_ALL=C sort -u |
    grep -Ev '^/\.$|^/usr/share/(doc|man|lintian|binfmts|applications|pixmaps)(/|$)' |
    sed 's|^/||' | tar -C / --no-recursion -cf - -T - | tar -C "$root" -xf -
  mapfile -t elves < <(find "$root/usr/bin" "$root/usr/lib/python3.11/lib-dynload" -type f | LC_ALL=C sort)
  put_libraries "$root" "${elves[@]}"
  put "$root" "$repo/deploy/scanner/pullgate-scan-worker" /usr/bin/pullgate-scan-worker 0755
  if [[ -n "$trivy" ]]; then
    put "$root" "$trivy" /usr/bin/trivy 0755
    put_libraries "$root" "$trivy"
  fi
  mkdir -p "$root/var/cache/pullgate-scan-worker"
  chown "$uid:$uid" "$root/var/cache/pullgate-scan-worker"; chmod 0750 "$root/var/cache/pullgate-scan-worker"
}

make_image pullgate pullgate_root \
  --config.entrypoint /usr/bin/pullgate \
  --config.cmd serve --config.cmd=--config --config.cmd /etc/pullgate/pullgate.json \
  --config.exposedports 5000/tcp --config.exposedports 5001/tcp \
  --config.volume /var/lib/pullgate \
  --config.env PATH=/usr/bin

make_image pullgate-scanner scanner_root \
  --config.entrypoint /usr/bin/python3 --config.entrypoint /usr/bin/pullgate-scan-worker \
  --config.volume /var/cache/pullgate-scan-worker \
  --config.env PATH=/usr/bin \
  --config.env TRIVY_IMAGE_SRC=remote \
  --config.env TRIVY_CACHE_DIR=/var/cache/pullgate-scan-worker \
  --config.env PYTHONDONTWRITEBYTECODE=1

if [[ -z "$trivy" ]]; then
  echo "build.sh: pullgate-scanner has NO trivy (Debian does not package it): rebuild with --trivy PATH," \
       "or the worker's scans fail with 'trivy: not found'" >&2
fi
