#!/usr/bin/env bash
# PID 1 of a lab host until it execs systemd. Runs inside fresh mount, PID,
# UTS, IPC and cgroup namespaces and the host's network namespace (lab/host.ts
# starts it with nsenter + unshare). Usage: host-init.sh NEWROOT CONSOLE_LOG
# Mounts what systemd expects, keeps the kernel's global knobs read-only
# (only /proc/sys/net is per network namespace), pivots into the overlay root
# and drops the capabilities that reach outside the host (LAB-NOTES).
set -euo pipefail
root=$1 console=$2
cd "$root"
mount --make-rprivate /

mount -t proc proc proc
mount --bind proc/sys proc/sys
mount --bind proc/sys/net proc/sys/net
mount -o remount,bind,ro proc/sys
mount -o remount,bind,rw proc/sys/net
mount -t sysfs -o ro sysfs sys
mount -t cgroup2 cgroup2 sys/fs/cgroup

mount -t tmpfs -o mode=0755,nosuid,size=4m tmpfs dev
for d in null zero full random urandom tty; do
    touch "dev/$d"
    mount --bind "/dev/$d" "dev/$d"
done
touch dev/console
mount --bind "$console" dev/console
mkdir -p dev/pts dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts dev/pts
ln -s pts/ptmx dev/ptmx
mount -t tmpfs -o nosuid,nodev tmpfs dev/shm
ln -s /proc/self/fd dev/fd
ln -s /proc/self/fd/0 dev/stdin
ln -s /proc/self/fd/1 dev/stdout
ln -s /proc/self/fd/2 dev/stderr

mkdir -p .oldroot
pivot_root . .oldroot
cd /
umount -l /.oldroot
rmdir /.oldroot

export container=ifbus-lab
exec setpriv --bounding-set -sys_time,-sys_module,-sys_rawio,-wake_alarm /sbin/init </dev/null >/dev/console 2>&1
