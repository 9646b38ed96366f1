#!/usr/bin/env bash
# make image: build solution/Dockerfile on a development machine, with no Docker engine and no
# container registry, as the CPU variant (a Debian bookworm base, its python3 3.11, torch's CPU
# wheel). Prints the image's size and the build time.
#   scripts/image.sh IMAGE        e.g. localhost/tweet-classifier:0.1.0-cpu
#
# What it sets up, once (as root; each step says in one line what is missing when it cannot):
# - podman, buildah, runc, mmdebstrap (apt-get);
# - $IMAGE_CACHE/containers.conf, used through CONTAINERS_CONF (the host's own is left alone):
#   runc (crun refuses hybrid cgroups), default ulimits within this host's hard limits;
# - $IMAGE_CACHE/bookworm-base.tar: `mmdebstrap --variant=minbase` with python3, its venv module
#   and ca-certificates, imported as the local image $BASE_IMAGE; kept between runs (delete the
#   tarball to refresh it).
# The build mounts, read-only and for the build only, the host's CA bundle (pip reaches PyPI
# through a TLS-intercepting proxy here) and the host's wheel folder (pip's find-links: the CPU
# torch wheel), so nothing of them is baked into the image.
set -euo pipefail
cd "$(dirname "$0")/.."

image="${1:?usage: scripts/image.sh IMAGE}"
cache="${IMAGE_CACHE:-.cache/image}"
base_image="${BASE_IMAGE:-localhost/tweet-classifier-base:bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
security="${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

missing() {
  echo "image: cannot build here: $*" >&2
  exit 3
}

# ---- host tools ----
tools=(podman buildah runc mmdebstrap)
absent=()
for tool in "${tools[@]}"; do
  command -v "$tool" > /dev/null || absent+=("$tool")
done
if ((${#absent[@]})); then
  if [[ $EUID -ne 0 ]] || ! command -v apt-get > /dev/null; then
    missing "${absent[*]} not installed (as root on Debian: apt-get install podman buildah runc mmdebstrap)"
  fi
  echo "image: installing ${absent[*]} (apt-get)"
  { apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah runc mmdebstrap; } \
    > /dev/null \
    || missing "apt-get install podman buildah runc mmdebstrap failed (no Debian mirror?)"
fi
[[ $EUID -eq 0 ]] || missing "run as root (rootful podman; rootless needs subuid ranges set up)"

# ---- containers.conf: runc, ulimits within the hard limits ----
mkdir -p "$cache"
nofile=$(ulimit -Hn); [[ $nofile == unlimited || $nofile -gt 65536 ]] && nofile=65536
nproc=$(ulimit -Hu); [[ $nproc == unlimited || $nproc -gt 32768 ]] && nproc=32768
cat > "$cache/containers.conf" << EOF
# Written by scripts/image.sh; used through CONTAINERS_CONF.
[containers]
# The runtime may not raise limits past the host's hard ones (runc: "error setting rlimit").
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
# crun refuses this kind of host's hybrid cgroup setup; runc works.
runtime = "runc"
EOF
export CONTAINERS_CONF="$PWD/$cache/containers.conf"

# ---- the base image ----
tarball="$cache/bookworm-base.tar"
if [[ ! -s $tarball ]]; then
  echo "image: making the Debian bookworm base (mmdebstrap, ~1 min) into $tarball"
  mmdebstrap --quiet --format=tar --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$tarball.part" "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
    "deb $security bookworm-security main" \
    || missing "mmdebstrap could not make the base (Debian mirror $mirror unreachable?)"
  mv "$tarball.part" "$tarball"
  podman rmi --force "$base_image" > /dev/null 2>&1 || true
fi
if ! podman image exists "$base_image"; then
  podman import --quiet --change 'CMD ["/bin/bash"]' "$tarball" "$base_image" > /dev/null
fi

# ---- pip's CA bundle and wheel folder, from the host's pip configuration ----
pip_setting() {  # an environment variable wins, then pip's configuration files
  local env="$1" key="$2" value=""
  value="${!env:-}"
  if [[ -z $value ]] && command -v pip3 > /dev/null; then
    value=$(pip3 config list 2> /dev/null | sed -n "s/^[a-z:.]*$key='\(.*\)'$/\1/p" | head -1)
  fi
  echo "$value"
}
args=(--build-arg "BASE_IMAGE=$base_image" --build-arg PYTHON_SOURCE=system
  --build-arg TORCH_VARIANT=cpu)
ca=$(pip_setting PIP_CERT cert)
if [[ -n $ca && -f $ca ]]; then
  args+=(--volume "$(realpath "$ca"):/run/pip-ca.crt:ro" --build-arg PIP_CERT=/run/pip-ca.crt)
fi
wheels=$(pip_setting PIP_FIND_LINKS find-links)
if [[ -n $wheels && -d $wheels ]]; then
  args+=(--volume "$(realpath "$wheels"):/run/wheels:ro" --build-arg PIP_FIND_LINKS=/run/wheels)
else
  echo "image: no local wheel folder (PIP_FIND_LINKS): torch's CPU wheel must come from" \
    "PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
  args+=(--build-arg "PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL:-https://download.pytorch.org/whl/cpu}")
fi

# ---- build ----
# docker format: the OCI image format has no HEALTHCHECK.
echo "image: building $image from solution/Dockerfile"
start=$(date +%s)
podman build --format docker --layers "${args[@]}" -f solution/Dockerfile -t "$image" . \
  > "$cache/build.log" 2>&1 || {
  tail -n 30 "$cache/build.log" >&2
  echo "image: the build failed (full log: $cache/build.log)" >&2
  exit 1
}
seconds=$(($(date +%s) - start))
bytes=$(podman image inspect --format '{{.Size}}' "$image")
echo "image: built $image in ${seconds} s; size $((bytes / 1000000)) MB" \
  "($(podman image inspect --format '{{len .RootFS.Layers}}' "$image") layers)"
