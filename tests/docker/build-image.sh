#!/usr/bin/env bash
# Builds the postern container image with podman (no Docker engine needed), as root on Debian 12.
#
#   tests/docker/build-image.sh [IMAGE]        IMAGE defaults to localhost/postern:dev
#
# Idempotent: installs its tools through scripts/install-deps (scripts/deps/docker.txt), makes the
# Debian 12 base image only when `podman image exists` says it is missing (debootstrap from the
# Debian mirror named in this machine's apt sources, then `podman import` under the exact name
# docker/Dockerfile uses, so no registry is contacted), and builds docker/Dockerfile from a clean
# context: the files git knows (tracked plus untracked-but-not-ignored), never build trees.
# Every step runs under `timeout`; timings are printed as "timing: STEP SECONDS".
#
# Environment:
#   POSTERN_PODMAN_DIR  cache folder (default /var/tmp/postern-podman): containers.conf, rootfs
#   POSTERN_BASE_IMAGE  base image name (default docker.io/library/debian:bookworm; must match
#                       the Dockerfile's ARG DEBIAN_IMAGE default, or is passed as a build-arg)
#   DEBIAN_MIRROR       override the mirror found in /etc/apt/sources.list{,.d/*}
#   DEBIAN_SECURITY_MIRROR  likewise for bookworm-security (none found: the image has no security suite)
#   POSTERN_BUILD_JOBS  parallel compile jobs inside the build (default: nproc)
#
# To use the same podman settings afterwards: export CONTAINERS_CONF=$POSTERN_PODMAN_DIR/containers.conf
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
image=${1:-${POSTERN_IMAGE:-localhost/postern:dev}}
cache=${POSTERN_PODMAN_DIR:-/var/tmp/postern-podman}
base=${POSTERN_BASE_IMAGE:-docker.io/library/debian:bookworm}

now() { echo "$EPOCHREALTIME"; }
timing() { awk -v s="$1" -v a="$2" -v b="$(now)" 'BEGIN { printf "timing: %-12s %7.1f s\n", s, b - a }'; }
log() { echo "build-image: $*" >&2; }

t0=$(now)
"$repo/scripts/install-deps" docker
timing install-deps "$t0"

# --- private podman settings (nothing under /etc is changed) -----------------------------------
mkdir -p "$cache"
# One build at a time (two tests may call this script at once): they would share the rootfs.
exec 9> "$cache/build.lock"
flock -w 1800 9 || { log "another build-image.sh holds $cache/build.lock"; exit 1; }
cat > "$cache/containers.conf" <<'EOF'
# Private podman settings for postern's image build/test (used via CONTAINERS_CONF=...).
[containers]
# Sandboxes without CAP_SYS_RESOURCE cannot apply podman's root defaults (nofile/nproc 1M+).
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
netns = "host"
[engine]
# crun refuses hybrid cgroup v1/v2 hosts ("cgroups in hybrid mode not supported"); runc works.
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF="$cache/containers.conf"

# --- base image ---------------------------------------------------------------------------------
# The archive URI the machine's apt sources use for a suite (bookworm, bookworm-security).
find_uri() {
    local suite=$1 f m
    # one-line format: "deb [opts] URI SUITE components"
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$f" ] || continue
        m=$(sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$f" | awk -v s="$suite" '$1=="deb" && $3==s { print $2; exit }')
        [ -n "$m" ] && { echo "$m"; return; }
    done
    # deb822 format: a stanza with "Suites: ... SUITE ..." and "URIs: URI"
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        m=$(awk -v want="$suite" 'BEGIN { RS=""; FS="\n" }
                 { uri=""; ok=0
                   for (i=1;i<=NF;i++) {
                     if ($i ~ /^URIs:/)   { split($i, a, /[ \t]+/); uri=a[2] }
                     if ($i ~ /^Suites:/) { n=split($i, s, /[ \t]+/); for (j=2;j<=n;j++) if (s[j]==want) ok=1 }
                   }
                   if (ok && uri!="") { print uri; exit } }' "$f")
        [ -n "$m" ] && { echo "$m"; return; }
    done
    return 1
}

if podman image exists "$base"; then
    log "base image $base present"
else
    mirror=${DEBIAN_MIRROR:-$(find_uri bookworm)} \
        || { log "no bookworm mirror found in /etc/apt sources; set DEBIAN_MIRROR"; exit 1; }
    security=${DEBIAN_SECURITY_MIRROR:-$(find_uri bookworm-security || true)}
    avail_kb=$(df -Pk "$cache" | awk 'NR==2 { print $4 }')
    if [ "$avail_kb" -lt $((2 * 1024 * 1024)) ]; then
        log "less than 2 GiB free under $cache ($((avail_kb / 1024)) MiB): not bootstrapping"; exit 1
    fi
    rootfs="$cache/rootfs"
    rm -rf "$rootfs"
    log "debootstrap --variant=minbase bookworm from $mirror"
    t=$(now)
    timeout 900 debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > "$cache/debootstrap.log" 2>&1 \
        || { tail -n 30 "$cache/debootstrap.log" >&2; log "debootstrap failed (log: $cache/debootstrap.log)"; exit 1; }
    # Sources like the official image's: updates and security too (debootstrap writes only the
    # release), so that the Dockerfile's apt-get upgrade/install get the fixed packages.
    rm -f "$rootfs/etc/apt/sources.list"
    {
        printf 'Types: deb\nURIs: %s\nSuites: bookworm bookworm-updates\nComponents: main\n' "$mirror"
        printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        if [ -n "$security" ]; then
            printf '\nTypes: deb\nURIs: %s\nSuites: bookworm-security\nComponents: main\n' "$security"
            printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
        fi
    } > "$rootfs/etc/apt/sources.list.d/debian.sources"
    # Smaller image: drop the downloaded .debs and apt lists (the Dockerfile runs apt-get update).
    rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/*
    timing debootstrap "$t"
    t=$(now)
    tar -C "$rootfs" --numeric-owner -c . \
        | timeout 300 podman import --change 'CMD ["bash"]' - "$base" >/dev/null
    timing import "$t"
    rm -rf "$rootfs"
fi

# --- clean build context ------------------------------------------------------------------------
ctx=$(mktemp -d /var/tmp/postern-ctx.XXXXXX)
trap 'rm -rf "$ctx"' EXIT
t=$(now)
if git -C "$repo" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # tracked + untracked files that .gitignore does not exclude (build*/ is ignored there)
    (cd "$repo" && git ls-files -z --cached --others --exclude-standard \
        | tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -x -C "$ctx"
else
    (cd "$repo" && tar --exclude='./build*' --exclude='./.git' --exclude='./.cache' -cf - .) | tar -x -C "$ctx"
fi
log "build context: $(find "$ctx" -type f | wc -l) files, $(du -sh "$ctx" | cut -f1)"
timing context "$t"

# --- image --------------------------------------------------------------------------------------
t=$(now)
log "podman build -t $image"
timeout 1800 podman build --network=host --build-arg "DEBIAN_IMAGE=$base" \
    --build-arg "BUILD_JOBS=${POSTERN_BUILD_JOBS:-$(nproc)}" \
    -f "$ctx/docker/Dockerfile" -t "$image" "$ctx"
timing image-build "$t"
log "image $image: $(podman image inspect --format '{{.Size}}' "$image" | awk '{ printf "%.1f MB", $1/1e6 }')"
timing total "$t0"
