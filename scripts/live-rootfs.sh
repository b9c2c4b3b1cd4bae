#!/bin/sh
# live-rootfs.sh — print the path of a minimal Debian root file system that
# boots systemd, building it first when it is missing. The live tests (make
# test-live) boot it with systemd-nspawn and import it into docker as an image.
#
#   scripts/live-rootfs.sh            build if missing, print the directory
#
# It lives outside the repository, in $LIVE_TEST_CACHE (default
# /var/cache/secrets-agent-test), and is rebuilt when the package list below
# changes (the stamp file records it) or the directory is gone. Needs root,
# debootstrap and Debian's mirror (MIRROR, default http://deb.debian.org/debian).
# The build takes about a minute; the tests never boot the host's own root.
set -eu

cache=${LIVE_TEST_CACHE:-/var/cache/secrets-agent-test}
suite=${SUITE:-bookworm}
mirror=${MIRROR:-http://deb.debian.org/debian}
# systemd as PID 1, dbus for systemctl, bash for the shell hooks; nothing else
# (no procps: the units must work without /bin/kill).
include=systemd,systemd-sysv,dbus,libpam-systemd
stamp="$suite minbase $include"
dir=$cache/rootfs-$suite

if [ -f "$dir/.secrets-agent-stamp" ] && [ "$(cat "$dir/.secrets-agent-stamp")" = "$stamp" ]; then
	echo "$dir"
	exit 0
fi
[ "$(id -u)" = 0 ] || { echo "live-rootfs.sh: needs root (debootstrap)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "live-rootfs.sh: debootstrap is not installed" >&2; exit 1; }
mkdir -p "$cache"
tmp=$dir.tmp.$$
trap 'rm -rf "$tmp"' EXIT
debootstrap --variant=minbase --include="$include" "$suite" "$tmp" "$mirror" >"$cache/debootstrap.log" 2>&1 || {
	tail -20 "$cache/debootstrap.log" >&2
	echo "live-rootfs.sh: debootstrap failed (log: $cache/debootstrap.log)" >&2
	exit 1
}
# A user to own a home, and a machine id so that journald and logind start.
chroot "$tmp" useradd --create-home --uid 1000 --shell /bin/bash alice
: >"$tmp/etc/machine-id"
rm -f "$tmp/var/cache/apt/archives/"*.deb
echo "$stamp" >"$tmp/.secrets-agent-stamp"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "$dir"
