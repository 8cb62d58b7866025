#!/bin/bash
# The systemd-booted mode of the pitr-bundle test guest. build-image.sh installs this file as
# /usr/local/sbin/pitr-ci-run and pitr-ci.service runs it once the guest reached
# multi-user.target (only when the kernel command line has pitr.ci=systemd, which
# run-guest.sh --systemd passes). So the test runs on a booted system: systemd is PID 1 and
# every enabled service (cron, rpcbind, nfs-kernel-server, postgresql, zfs) is up.
#
# Mounts the host's 9p share (mount_tag "ci") at /ci, runs /ci/run.sh under a hard timeout
# (pitr.timeout=<s> on the kernel command line, default 1200) with its output on the console
# and in /ci/guest.log, writes /ci/journal.log (the boot's journal) and /ci/exit-code. The
# unit powers the guest off when this script ends, whatever its outcome (poweroff-immediate:
# a hard NFS mount whose server already stopped must not hang the shutdown).
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=dumb

log() { printf '[pitr-ci %7ss] %s\n' "$(cut -d' ' -f1 /proc/uptime)" "$*" >&2; }

timeout_s=1200
for word in $(< /proc/cmdline); do
    case $word in
        pitr.timeout=*) timeout_s=${word#pitr.timeout=} ;;
    esac
done
[[ $timeout_s =~ ^[0-9]+$ ]] || timeout_s=1200

modprobe 9pnet_virtio 2> /dev/null || true
mkdir -p /ci
if ! mountpoint -q /ci && ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 ci /ci; then
    log "FATAL: cannot mount the 9p share 'ci' at /ci"
    exit 1
fi
if [[ ! -f /ci/run.sh ]]; then
    log "FATAL: /ci/run.sh is missing"
    echo 125 > /ci/exit-code
    exit 1
fi
log "systemd is up ($(systemctl is-system-running 2> /dev/null)); running /ci/run.sh (timeout ${timeout_s}s)"
rm -f /ci/exit-code
(
    cd /ci || exit 125
    PITR_QEMU_GUEST=1 PITR_QEMU_SYSTEMD=1 PITR_CI_DIR=/ci timeout --kill-after=10 "$timeout_s" bash /ci/run.sh
) 2>&1 | tee /ci/guest.log
rc=${PIPESTATUS[0]}
log "/ci/run.sh exited with $rc"
journalctl -b --no-pager -o short-monotonic > /ci/journal.log 2>&1 || true
echo "$rc" > /ci/exit-code.tmp && mv -f /ci/exit-code.tmp /ci/exit-code
sync -f /ci/exit-code 2> /dev/null || true
exit 0
