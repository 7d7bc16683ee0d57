#!/usr/bin/env bash
# Build the lab's read-only base root: Debian bookworm (minbase) plus systemd,
# sshd and the gateway's distribution packages, with nothing started at install
# time. Usage: build-base.sh TARGET_DIR MIRROR_URL PACKAGE...
# Writes TARGET_DIR/rootfs and, last, TARGET_DIR/complete (so a killed build
# is never mistaken for a finished one). Run under flock by lab/base.ts.
set -euo pipefail
target=$1 mirror=$2
shift 2
pkgs=("$@")

if [ -f "$target/complete" ]; then exit 0; fi
rm -rf "$target.tmp"
mkdir -p "$target.tmp"
root="$target.tmp/rootfs"

t0=$(date +%s)
debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$mirror" >"$target.tmp/debootstrap.log" 2>&1 \
    || { tail -n 30 "$target.tmp/debootstrap.log" >&2; exit 1; }
t1=$(date +%s)

# Nothing may start while packages install: the base is a template, not a host.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"

cleanup() {
    for m in dev/pts dev proc sys; do umount -l "$root/$m" 2>/dev/null || true; done
}
trap cleanup EXIT
mount -t proc proc "$root/proc"
mount --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"
mount -t sysfs -o ro sysfs "$root/sys"

export DEBIAN_FRONTEND=noninteractive
chroot "$root" apt-get -o DPkg::Lock::Timeout=600 update -qq >"$target.tmp/apt.log" 2>&1 \
    || { tail -n 30 "$target.tmp/apt.log" >&2; exit 1; }
chroot "$root" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${pkgs[@]}" >>"$target.tmp/apt.log" 2>&1 \
    || { tail -n 30 "$target.tmp/apt.log" >&2; exit 1; }
chroot "$root" apt-get clean
cleanup
trap - EXIT
t2=$(date +%s)

rm -f "$root/usr/sbin/policy-rc.d"
# Hosts must not share SSH host keys: each host generates its own at boot.
rm -f "$root"/etc/ssh/ssh_host_*
# Services come up only when a deploy enables them, as on a fresh VM after install.
chroot "$root" systemctl disable redis-server mariadb coturn rtpengine-daemon keepalived >/dev/null 2>&1 || true
# Units that make no sense in a container host.
chroot "$root" systemctl mask systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket \
    systemd-networkd-wait-online.service getty@tty1.service console-getty.service >/dev/null 2>&1 || true
echo "root:!" | chroot "$root" chpasswd -e
: >"$root/etc/machine-id"

printf 'debootstrap_seconds=%s\npackages_seconds=%s\n' $((t1 - t0)) $((t2 - t1)) >"$target.tmp/timings"
printf '%s\n' "${pkgs[@]}" >"$target.tmp/packages"
touch "$target.tmp/complete"
rm -rf "$target"
mv "$target.tmp" "$target"
