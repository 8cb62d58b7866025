#!/usr/bin/env bash
# Boot the OpenZFS test guest once and run <share-dir>/run.sh inside it.
#
# Usage: tests/qemu/run-guest.sh [--systemd] <share-dir>
#
# By default the guest's PID 1 is a small init script (guest-init.sh: udev, zfs, run.sh;
# fastest). With --systemd the guest boots Debian's systemd as PID 1 with all its enabled
# services (cron, rpcbind, nfs-kernel-server, postgresql, zfs) and pitr-ci.service runs
# run.sh after multi-user.target (guest-systemd-run.sh), so units a test installs really run.
#
# <share-dir> must contain run.sh. It is the guest's /ci (9p, read-write): the test reads its
# inputs from there and leaves its results there. After the run it also holds
#   console.log  the serial console (kernel, init and test output)
#   guest.log    the output of run.sh alone
#   exit-code    run.sh's exit code (written by the guest's init)
# The guest gets 13 empty sparse 1 GB disks on virtio-scsi, stable inside the guest as
#   /dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_zdisk01 ... _zdisk13
# (serial zdiskNN; the sdX order is not stable). Root is a throw-away qcow2 overlay on the
# cached image, so nothing a test does persists. A kernel panic reboots (panic=-1), which
# ends qemu at once (-no-reboot) instead of waiting for the timeout.
#
# Exit status: run.sh's exit code; 124 on timeout (qemu killed); 125 if the guest wrote no
# exit code (boot failure, kernel panic, init failure; see console.log).
#
# The image comes from build-image.sh (built on first use, ~9-10 min; cached afterwards).
# Environment:
#   PITR_QEMU_TIMEOUT    seconds before qemu is killed (default 900)
#   PITR_QEMU_IMAGE_DIR  use this image directory instead of calling build-image.sh
#   PITR_QEMU_DISKS      number of data disks (default 13, at most 99)
#   PITR_QEMU_DISK_SIZE  size of each data disk (default 1G)
#   PITR_QEMU_MEM        guest memory in MiB (default 2048)
#   PITR_QEMU_SMP        guest CPUs (default 2)
#   PITR_QEMU_APPEND     extra kernel command line arguments
#   PITR_QEMU_FOLLOW     1: also stream the guest console to stderr while it runs
#   PITR_QEMU_TMPDIR     where the overlay and disks go (default ${TMPDIR:-/tmp})
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T_BEGIN=$EPOCHREALTIME
elapsed_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
log() { printf '[run-guest %6.1fs] %s\n' "$(elapsed_since "$T_BEGIN")" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 2
}

SYSTEMD=0
if [[ ${1:-} == --systemd ]]; then
    SYSTEMD=1
    shift
fi
(($# == 1)) || {
    echo "usage: $0 [--systemd] <share-dir>   (the directory must contain run.sh)" >&2
    exit 2
}
[[ -d $1 ]] || die "not a directory: $1"
SHARE=$(cd "$1" && pwd -P)
[[ -f $SHARE/run.sh ]] || die "$SHARE/run.sh is missing"

TIMEOUT=${PITR_QEMU_TIMEOUT:-900}
NDISKS=${PITR_QEMU_DISKS:-13}
DISK_SIZE=${PITR_QEMU_DISK_SIZE:-1G}
MEM=${PITR_QEMU_MEM:-2048}
SMP=${PITR_QEMU_SMP:-2}
FOLLOW=${PITR_QEMU_FOLLOW:-0}
[[ $TIMEOUT =~ ^[0-9]+$ ]] || die "PITR_QEMU_TIMEOUT must be a number of seconds"
if ! [[ $NDISKS =~ ^[0-9]+$ ]] || ((NDISKS > 99)); then
    die "PITR_QEMU_DISKS must be 0..99"
fi

if [[ -n ${PITR_QEMU_IMAGE_DIR:-} ]]; then
    IMAGE=$PITR_QEMU_IMAGE_DIR
else
    log "locating the image (build-image.sh; a first build takes ~10 min)"
    IMAGE=$("$HERE/build-image.sh")
fi
for f in base.raw vmlinuz initrd.img root-uuid complete; do
    [[ -f $IMAGE/$f ]] || die "incomplete image directory $IMAGE (no $f)"
done
ROOT_UUID=$(< "$IMAGE/root-uuid")
command -v qemu-system-x86_64 > /dev/null || die "qemu-system-x86_64 not found (run build-image.sh)"

TMP=$(mktemp -d "${PITR_QEMU_TMPDIR:-${TMPDIR:-/tmp}}/pitr-qemu.XXXXXX")
FOLLOW_PID=''
# shellcheck disable=SC2329 # invoked through the EXIT trap
cleanup() {
    [[ -z $FOLLOW_PID ]] || kill "$FOLLOW_PID" 2> /dev/null || true
    rm -rf --one-file-system "$TMP"
}
trap cleanup EXIT

rm -f "$SHARE/exit-code" "$SHARE/exit-code.tmp" "$SHARE/guest.log" "$SHARE/console.log" \
    "$SHARE/journal.log"

if ((SYSTEMD)); then
    # the guest's own hard timeout ends run.sh a minute before the host kills qemu
    inner=$((TIMEOUT > 120 ? TIMEOUT - 60 : TIMEOUT))
    boot_args="pitr.ci=systemd pitr.timeout=$inner"
else
    boot_args="init=/sbin/pitr-test-init"
fi
qemu-img create -q -f qcow2 -b "$IMAGE/base.raw" -F raw "$TMP/root.qcow2"
args=(
    -name pitr-zfs-guest
    -accel "tcg,thread=multi" -cpu max -smp "$SMP" -m "$MEM" -M q35
    -nodefaults -no-reboot -display none -monitor none -nic none
    -serial "file:$SHARE/console.log"
    -kernel "$IMAGE/vmlinuz" -initrd "$IMAGE/initrd.img"
    -append "root=UUID=$ROOT_UUID rw console=ttyS0 $boot_args panic=-1 ${PITR_QEMU_APPEND:-}"
    -drive "file=$TMP/root.qcow2,format=qcow2,if=virtio,cache=unsafe"
    -virtfs "local,path=$SHARE,mount_tag=ci,security_model=none"
    -device "virtio-scsi-pci,id=scsi0"
)
for ((i = 1; i <= NDISKS; i++)); do
    n=$(printf '%02d' "$i")
    truncate -s "$DISK_SIZE" "$TMP/zdisk$n.raw"
    args+=(
        -drive "file=$TMP/zdisk$n.raw,format=raw,if=none,id=zd$n,cache=unsafe,discard=unmap"
        -device "scsi-hd,bus=scsi0.0,drive=zd$n,serial=zdisk$n"
    )
done

if [[ $FOLLOW == 1 ]]; then
    : > "$SHARE/console.log"
    tail -n +1 -F "$SHARE/console.log" >&2 2> /dev/null &
    FOLLOW_PID=$!
fi

log "booting ($( ((SYSTEMD)) && echo systemd || echo init script) as PID 1): image $IMAGE, $NDISKS x $DISK_SIZE disks, ${MEM} MiB, $SMP vCPU (tcg), timeout ${TIMEOUT}s"
log "console: $SHARE/console.log"
set +e
timeout --kill-after=15 "$TIMEOUT" qemu-system-x86_64 "${args[@]}"
qemu_rc=$?
set -e
if [[ -n $FOLLOW_PID ]]; then
    sleep 0.5
    kill "$FOLLOW_PID" 2> /dev/null || true
    wait "$FOLLOW_PID" 2> /dev/null || true
    FOLLOW_PID=''
fi
took=$(elapsed_since "$T_BEGIN")

if ((qemu_rc == 124 || qemu_rc == 137)); then
    log "TIMEOUT: qemu killed after ${TIMEOUT}s (elapsed ${took}s); see $SHARE/console.log"
    tail -n 20 "$SHARE/console.log" >&2 || true
    exit 124
fi
((qemu_rc == 0)) || log "WARN: qemu exited with $qemu_rc"
if [[ ! -s $SHARE/exit-code ]]; then
    log "the guest wrote no exit code (elapsed ${took}s); last console lines:"
    tail -n 30 "$SHARE/console.log" >&2 || true
    exit 125
fi
rc=$(< "$SHARE/exit-code")
[[ $rc =~ ^[0-9]+$ ]] || {
    log "malformed exit code '$rc'"
    exit 125
}
log "guest finished: run.sh exit code $rc, elapsed ${took}s"
exit "$rc"
