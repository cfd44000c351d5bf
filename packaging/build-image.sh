#!/bin/sh
# Build the alignment-node container image without a container registry (docs/deployment.md, "Packaging").
#
#   1. base: a minimal Debian root file system with python3 (mmdebstrap from this machine's apt sources), cached
#      as a tarball in .cache/container/ and imported as localhost/alignment-node-base:<suite>;
#   2. wheels: the node's wheel (built from a copy of the package, so the tree gets no build/ or egg-info) and
#      the wheels of its dependencies (pip's ordinary index and cache; reused from .cache/container/wheels);
#   3. image: packaging/Containerfile on top of the base, with the wheels as the build context.
#
# Environment: ALIGNMENT_IMAGE (tag, default localhost/alignment-node:latest), ALIGNMENT_IMAGE_SUITE (Debian suite,
# default this machine's), ALIGNMENT_IMAGE_APT_SOURCES (apt sources file the base is built from, default this
# machine's), ALIGNMENT_IMAGE_CACHE (default .cache/container), PYTHON (builds the wheels, default .venv/bin/python),
# ALIGNMENT_IMAGE_COLD=1 (build everything again: the base, the dependency wheels, every layer; pip's own
# download cache still serves). Needs root (or podman's rootless set-up), podman and mmdebstrap.
# Exit status 3: this machine cannot build the image (what is missing is said).
set -eu
started=$(date +%s)

repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${ALIGNMENT_IMAGE_CACHE:-$repo/.cache/container}
image=${ALIGNMENT_IMAGE:-localhost/alignment-node:latest}
python=${PYTHON:-$repo/.venv/bin/python}
suite=${ALIGNMENT_IMAGE_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}
sources=${ALIGNMENT_IMAGE_APT_SOURCES:-}

die() { echo "build-image: $*" >&2; exit 3; }  # 3: this machine cannot build the image (the tests skip)
step() { echo "build-image: [$(( $(date +%s) - started )) s] $*" >&2; }

command -v podman >/dev/null || die "podman is not installed (apt-get install podman)"
[ -n "$suite" ] || die "cannot tell the Debian suite from /etc/os-release: set ALIGNMENT_IMAGE_SUITE"
[ -x "$python" ] || die "no Python at $python to build the wheels: set PYTHON"
if [ -z "$sources" ]; then
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
        if [ -s "$f" ] && grep -q '^[^#]' "$f"; then sources=$f; break; fi
    done
fi
[ -n "$sources" ] && [ -s "$sources" ] || die "no apt sources file to build the base from: \
set ALIGNMENT_IMAGE_APT_SOURCES"

mkdir -p "$cache/wheels"
# One build at a time on this machine (two test modules may build the image; podman's store and the cache are shared).
exec 9>"$cache/build.lock"
flock 9
base_tar=$cache/base-$suite.tar
base_part=$cache/base-$suite.part.tar  # mmdebstrap picks its output format from the name's ending: keep ".tar"
base_image=localhost/alignment-node-base:$suite

# ------------------------------------------------------------------------------------------------ 1. base
cold=${ALIGNMENT_IMAGE_COLD:-0}
if [ ! -s "$base_tar" ] || [ "$cold" = 1 ]; then
    command -v mmdebstrap >/dev/null || die "mmdebstrap is not installed (apt-get install mmdebstrap)"
    step "building the base file system ($suite, from $sources): a few minutes, once"
    # essential: dpkg and the Essential:yes set only (no apt); /usr merged by the hook (not by the usrmerge package,
    # which pulls in perl); documentation, manuals and locales left out.
    mmdebstrap --variant=essential --format=tar --include=python3-venv,ca-certificates,passwd \
        --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/locale/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*' \
        "$suite" "$base_part" "$sources" || { rm -f "$base_part"; die "mmdebstrap failed (see above)"; }
    [ -s "$base_part" ] || die "mmdebstrap reported success but wrote no $base_part"
    mv "$base_part" "$base_tar"
    podman image rm --force "$base_image" >/dev/null 2>&1 || true
fi
if ! podman image exists "$base_image"; then
    step "importing $base_tar as $base_image"
    podman import --quiet "$base_tar" "$base_image" >/dev/null
fi
# What this host's podman needs to run a container: nothing, or (inside a container without CAP_SYS_RESOURCE and
# with hybrid cgroups, which crun refuses) runc and limits no higher than ours. Written to $cache/podman-args for
# the tests and bench/container.py.
probe='import sys; print("%d.%d" % sys.version_info[:2])'
podman_args=
if ! base_python=$(podman run --rm --network=none "$base_image" python3 -c "$probe" 2>/dev/null); then
    nofile=$(ulimit -Hn); [ "$nofile" = unlimited ] && nofile=65536
    podman_args="--ulimit nofile=$nofile:$nofile --ulimit nproc=4096:4096"
    command -v runc >/dev/null && podman_args="--runtime runc $podman_args"
    # shellcheck disable=SC2086
    base_python=$(podman run --rm --network=none $podman_args "$base_image" python3 -c "$probe") || \
        die "podman cannot run a container here, not even with: $podman_args (apt-get install runc may help)"
fi
echo "$podman_args" > "$cache/podman-args"
host_python=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$base_python" = "$host_python" ] || die "the base has Python $base_python but $python is $host_python: the wheels \
would not fit; set PYTHON to a Python $base_python"

# ------------------------------------------------------------------------------------------------ 2. wheels
context=$cache/context
rm -rf "$context" "$cache/src"
mkdir -p "$context/app" "$context/wheels" "$cache/src"
[ "$cold" = 1 ] && rm -f "$cache/wheels"/*.whl
[ -f "$repo/alignment_node/api/portal/portal.js" ] || \
    step "warning: alignment_node/api/portal/portal.js is not built (scripts/install.sh); the portal will say so"
tar -C "$repo" --exclude=__pycache__ -cf - pyproject.toml README.md alignment_node | tar -C "$cache/src" -xf -
step "building the wheels"
# Every file dated alike (the zip format's first day): the same sources give the same wheel, so podman reuses the
# node's layers when nothing changed.
SOURCE_DATE_EPOCH=315532800 "$python" -m pip wheel --quiet --no-deps --no-build-isolation --wheel-dir "$context/app" \
    "$cache/src"
app_wheel=$(ls "$context/app"/alignment_node-*.whl)
# Dependencies: from the cache alone if it has them all, else from the index (pip's own cache makes it quick).
deps="--quiet --find-links $cache/wheels --wheel-dir $context/wheels"
# shellcheck disable=SC2086
"$python" -m pip wheel $deps --no-index "$app_wheel" 2>/dev/null || "$python" -m pip wheel $deps "$app_wheel"
rm -f "$context/wheels"/alignment_node-*.whl
cp -n "$context/wheels"/*.whl "$cache/wheels/" 2>/dev/null || true
rm -rf "$cache/src"

# ------------------------------------------------------------------------------------------------ 3. image
step "building $image"
[ "$cold" = 1 ] && podman_args="$podman_args --no-cache"
# shellcheck disable=SC2086
podman build $podman_args --network=none --pull=never --build-arg "BASE=$base_image" --tag "$image" \
    --file "$repo/packaging/Containerfile" "$context"
step "done: $image"
