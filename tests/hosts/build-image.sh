#!/usr/bin/env bash
# Builds the Debian 12 images pgdrill's role tests run as hosts (no registry is reachable here):
#   localhost/pgdrill-host:bookworm     systemd as PID 1, cron, python3, sshd; no PostgreSQL
#   localhost/pgdrill-dbhost:bookworm   the same plus the PostgreSQL 15 server (a database host)
# Idempotent: an image built from this script as it is now is kept; a change here rebuilds both.
# Needs root, debootstrap and podman.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
export CONTAINERS_CONF="$here/containers.conf"
mirror="${PGDRILL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
base=localhost/pgdrill-host:bookworm
db=localhost/pgdrill-dbhost:bookworm
recipe="$(sha256sum "$0" | cut -c1-16)"

current() { [ "$(podman image inspect --format '{{ index .Labels "pgdrill.recipe" }}' "$1" 2>/dev/null)" = "$recipe" ]; }
if ! current "$base" || ! current "$db"; then
  podman image rm -f "$db" "$base" >/dev/null 2>&1 || true
fi

if ! podman image exists "$base"; then
  root="$(mktemp -d /var/tmp/pgdrill-rootfs-XXXXXX)"
  trap 'rm -rf "$root"' EXIT
  echo "building $base with debootstrap (about a minute)"
  debootstrap --variant=minbase \
    --include=python3,python3-apt,cron,systemd,systemd-sysv,dbus,iproute2,procps,sudo,ca-certificates,logrotate,gnupg,openssh-server \
    bookworm "$root" "$mirror" >/dev/null
  # No apt run may take the dpkg lock in the middle of a test.
  for unit in apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service \
              getty@tty1.service systemd-logind.service; do
    ln -sf /dev/null "$root/etc/systemd/system/$unit"
  done
  echo "deb $mirror bookworm main" > "$root/etc/apt/sources.list"
  tar -C "$root" -c . | podman import --change 'CMD ["/sbin/init"]' --change 'STOPSIGNAL SIGRTMIN+3' \
    --change "LABEL pgdrill.recipe=$recipe" - "$base" >/dev/null
  rm -rf "$root"  # now, not at exit: the next step's trap replaces this one
  trap - EXIT
fi

if ! podman image exists "$db"; then
  echo "building $db (PostgreSQL 15 server)"
  name="pgdrill-build-$$"
  podman run --name "$name" --systemd=always -d "$base" >/dev/null
  trap 'podman rm -f "$name" >/dev/null 2>&1 || true' EXIT
  podman exec "$name" bash -c 'mkdir -p /etc/postgresql-common && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql-15 >/dev/null'
  podman stop "$name" >/dev/null
  podman commit --change 'CMD ["/sbin/init"]' --change "LABEL pgdrill.recipe=$recipe" "$name" "$db" >/dev/null
  podman rm "$name" >/dev/null
fi
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep pgdrill-
