#!/usr/bin/env bash
# Make this machine ready to run systemd "VPS" containers: a container engine that answers and
# the Debian base images, built locally because no registry can be reached (see testbed.md), and
# Debian's Chromium with its driver for the browser checks.
# Idempotent: a second run only checks and prints what is already there.
#
# Environment (all optional):
#   LERNMANAGER_IMAGE_DEBIAN12 / LERNMANAGER_IMAGE_DEBIAN13  image names; point them at registry
#       images on a machine that can pull, and this script will not build them
#   LERNMANAGER_TESTBED_CACHE  host directory for the apt and pip caches shared by all containers
#   DEBIAN_MIRROR              mirror for debootstrap; default: the one this host's apt uses
set -euo pipefail

IMAGE_DEBIAN12=${LERNMANAGER_IMAGE_DEBIAN12:-lernmanager-testbed/debian:12-v2}
IMAGE_DEBIAN13=${LERNMANAGER_IMAGE_DEBIAN13:-lernmanager-testbed/debian:13-v2}
CACHE_DIR=${LERNMANAGER_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lernmanager-testbed}
# Packages every image gets: only what the smallest VPS has (a provider's minimal template, an LXC
# image): systemd as PID 1, python3 for Ansible, sudo, CA certificates and iproute2. Whatever the
# role calls, the role installs (tests/test_called_executables.py); a test helper that needs more
# installs it in its scenario's prepare. The tag changes whenever this list does (v2: without
# dbus, curl and procps, which hid the role's missing procps).
IMAGE_PACKAGES=systemd,systemd-sysv,python3,sudo,ca-certificates,iproute2

say() { printf 'testbed: %s\n' "$*" >&2; }
die() { printf 'testbed: ERROR: %s\n' "$*" >&2; exit 1; }

is_debian_root() { [ "$(id -u)" -eq 0 ] && [ -r /etc/debian_version ] && command -v apt-get >/dev/null; }

apt_install() {
  is_debian_root || die "missing '$1': install it (Debian package '$1') and run this again"
  say "installing Debian package(s): $*"
  # apt-get update only when the lists are missing or older than a day, to keep re-runs fast.
  if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mtime -1 -print -quit 2>/dev/null)" ]; then
    apt-get update -qq
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_engine() {
  if docker info >/dev/null 2>&1; then
    say "docker engine answers: nothing to do"
    return
  fi
  command -v dockerd >/dev/null || apt_install docker.io
  command -v docker >/dev/null || die "no 'docker' client found after installing docker.io"
  if ! pgrep -x dockerd >/dev/null; then
    [ "$(id -u)" -eq 0 ] || die "dockerd is not running and only root can start it: start the docker service (or run this as root)"
    say "starting dockerd in the background (log: /var/log/dockerd.log)"
    # No systemd on the build machines, so dockerd is started by hand and outlives this script.
    nohup dockerd >/var/log/dockerd.log 2>&1 &
  fi
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && { say "docker engine is up"; return; }
    sleep 1
  done
  die "dockerd did not answer within 60 s: see /var/log/dockerd.log"
}

ensure_browser() {
  # The browser checks (scripts/browser_check.py) drive Debian's Chromium through its chromedriver
  # on this machine, against the containers.
  command -v chromium >/dev/null && command -v chromedriver >/dev/null && return
  apt_install chromium chromium-driver
}

host_mirror() {
  # The mirror this host already uses, so no host name is written into the project.
  local m
  m=$(grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n1 || true)
  [ -n "$m" ] || m=$(grep -hsE '^deb ' /etc/apt/sources.list | awk '{print $2}' | grep -v security | head -n1 || true)
  [ -n "$m" ] || die "cannot read a Debian mirror from /etc/apt: set DEBIAN_MIRROR"
  printf '%s\n' "$m"
}

build_image() {
  local image=$1 suite=$2 mirror rootfs
  if docker image inspect "$image" >/dev/null 2>&1; then
    say "image $image exists: nothing to do"
    return
  fi
  # A name given in LERNMANAGER_IMAGE_DEBIAN*: a registry's image, pulled when the registry answers.
  if [[ $image != lernmanager-testbed/* ]] && docker pull -q "$image" >/dev/null 2>&1; then
    say "image $image pulled"
    return
  fi
  command -v debootstrap >/dev/null || apt_install debootstrap
  mirror=${DEBIAN_MIRROR:-$(host_mirror)}
  rootfs=$(mktemp -d "${TMPDIR:-/tmp}/lernmanager-rootfs-$suite.XXXXXX")
  # shellcheck disable=SC2064  # expand now: the trap must remove this very directory
  trap "rm -rf '$rootfs' '$rootfs.log'" EXIT
  say "building $image: debootstrap $suite from $mirror (about a minute)"
  debootstrap --variant=minbase --include="$IMAGE_PACKAGES" "$suite" "$rootfs" "$mirror" \
    >"$rootfs.log" 2>&1 || { tail -n 20 "$rootfs.log" >&2; die "debootstrap $suite failed (log above)"; }
  rm -f "$rootfs.log"
  # Keep downloaded .deb files: the containers share the apt archive cache of the host.
  rm -f "$rootfs/etc/apt/apt.conf.d/docker-clean"
  printf 'APT::Keep-Downloaded-Packages "true";\n' >"$rootfs/etc/apt/apt.conf.d/10keep-archives"
  apt-get clean -o "Dir=$rootfs" >/dev/null 2>&1 || true
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
  : >"$rootfs/etc/machine-id"
  tar -C "$rootfs" -c . | docker import \
    -c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker' \
    - "$image" >/dev/null
  rm -rf "$rootfs"
  trap - EXIT
  say "image $image built"
}

ensure_caches() {
  # apt-bookworm-core1: scenarios that run beside others (on core 1) keep apt's lock to themselves.
  mkdir -p "$CACHE_DIR/apt-bookworm/partial" "$CACHE_DIR/apt-bookworm-core1/partial" \
    "$CACHE_DIR/apt-trixie/partial" "$CACHE_DIR/pip"
}

main() {
  ensure_engine
  build_image "$IMAGE_DEBIAN12" bookworm
  build_image "$IMAGE_DEBIAN13" trixie
  ensure_caches
  ensure_browser
  say "ready: $IMAGE_DEBIAN12, $IMAGE_DEBIAN13, chromium; caches in $CACHE_DIR"
}

main "$@"
