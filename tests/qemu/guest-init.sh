#!/bin/bash
# PID 1 of the pitr-bundle OpenZFS test guest. build-image.sh installs this file as
# /sbin/pitr-test-init; run-guest.sh boots the kernel with init=/sbin/pitr-test-init.
#
# Brings up just enough of a system (proc/sys/dev/run/tmp, udev, the zfs module, loopback),
# mounts the host's 9p share (mount_tag "ci") at /ci, runs /ci/run.sh with its output on the
# serial console and in /ci/guest.log, writes its exit code to /ci/exit-code, syncs and
# powers the machine off through sysrq. It never returns: PID 1 exiting panics the kernel.
#
# Strict mode is on, but every step that may fail is guarded so that the guest always
# powers off (the EXIT trap below) instead of hanging until the host's timeout.
set -euo pipefail

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb
umask 022

uptime_s() {
    local up _rest
    read -r up _rest < /proc/uptime 2>/dev/null || up='?'
    printf '%s' "$up"
}

log() {
    printf '[pitr-init %7ss] %s\n' "$(uptime_s)" "$*" >&2
}

# shellcheck disable=SC2329 # invoked through the EXIT trap
power_off() {
    trap - EXIT
    log "sync + power off"
    sync || true
    echo o > /proc/sysrq-trigger 2>/dev/null || true
    # sysrq-o is asynchronous; never let PID 1 exit (that would panic the kernel).
    while :; do sleep 60; done
}
trap power_off EXIT

mount_if_needed() { # <fstype> <source> <target> [options]
    local fstype=$1 source=$2 target=$3 options=${4:-}
    mkdir -p "$target"
    if mountpoint -q "$target"; then
        return 0
    fi
    if [[ -n $options ]]; then
        mount -n -t "$fstype" -o "$options" "$source" "$target"
    else
        mount -n -t "$fstype" "$source" "$target"
    fi
}

# The kernel starts PID 1 with stdin/stdout/stderr on /dev/console, which is the serial port
# (console=ttyS0): everything printed here ends up in the host's console.log.
mount_if_needed proc proc /proc || true
log "init started (kernel $(uname -r))"
mount_if_needed sysfs sysfs /sys || log "WARN: mounting /sys failed"
mount_if_needed devtmpfs devtmpfs /dev mode=0755 || log "WARN: mounting /dev failed"
mount_if_needed devpts devpts /dev/pts gid=5,mode=620,ptmxmode=000 || log "WARN: /dev/pts failed"
mount_if_needed tmpfs tmpfs /dev/shm mode=1777,nosuid,nodev || log "WARN: /dev/shm failed"
mount_if_needed tmpfs tmpfs /run mode=0755,nosuid,nodev || log "WARN: mounting /run failed"
mount_if_needed tmpfs tmpfs /tmp mode=1777,nosuid,nodev || log "WARN: mounting /tmp failed"
mkdir -p /run/lock /run/udev
mount -o remount,rw / 2>/dev/null || log "WARN: could not remount / read-write"
echo pitr-guest > /proc/sys/kernel/hostname || true
ip link set lo up 2>/dev/null || log "WARN: could not bring up lo"

log "starting udevd"
/lib/systemd/systemd-udevd --daemon || log "WARN: systemd-udevd failed to start"
udevadm trigger --action=add --type=subsystems || true
udevadm trigger --action=add --type=devices || true
udevadm settle --timeout=120 || log "WARN: udevadm settle timed out"
log "udev settled"

if modprobe zfs; then
    log "zfs module loaded: $(cat /sys/module/zfs/version 2>/dev/null || echo '?')"
else
    log "WARN: modprobe zfs failed"
fi

modprobe 9pnet_virtio 2>/dev/null || true
if ! mount_if_needed 9p ci /ci trans=virtio,version=9p2000.L,msize=262144; then
    log "FATAL: cannot mount the 9p share 'ci' at /ci"
    exit 1
fi
log "9p share mounted at /ci"

if [[ ! -f /ci/run.sh ]]; then
    log "FATAL: /ci/run.sh is missing"
    echo 125 > /ci/exit-code || true
    exit 1
fi

log "running /ci/run.sh"
rm -f /ci/exit-code
set +e
(
    cd /ci || exit 125
    PITR_QEMU_GUEST=1 PITR_CI_DIR=/ci bash /ci/run.sh
) 2>&1 | tee /ci/guest.log
rc=${PIPESTATUS[0]}
set -e
log "/ci/run.sh exited with $rc"
if ! { echo "$rc" > /ci/exit-code.tmp && mv -f /ci/exit-code.tmp /ci/exit-code; }; then
    log "WARN: could not write /ci/exit-code"
fi
exit 0 # -> power_off
