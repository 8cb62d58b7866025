#!/usr/bin/env bash
# Smoke test for the OpenZFS guest: an example run.sh. Runs INSIDE the guest (as root, PID 1's
# child) from the 9p share /ci. Usage on the host:
#   d=$(mktemp -d) && cp tests/qemu/smoke-run.sh "$d/run.sh" && tests/qemu/run-guest.sh "$d"
# Each step prints its duration; a summary is also written to /ci/smoke-timings.txt.
set -euo pipefail

log() { printf '[smoke] %s\n' "$*" >&2; }

TIMINGS=()
step() { # step <label> <command...>: run, time, fail the test on error
    local label=$1 t0 took rc=0
    shift
    log ">>> $label: $*"
    t0=$EPOCHREALTIME
    "$@" || rc=$?
    took=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
    TIMINGS+=("$(printf '%-26s %7s s  rc=%s' "$label" "$took" "$rc")")
    log "<<< $label: ${took} s (rc=$rc)"
    if ((rc != 0)); then
        log "FAILED: $label"
        exit "$rc"
    fi
}

write_summary() {
    printf '%s\n' "${TIMINGS[@]}" | tee "${PITR_CI_DIR:-/ci}/smoke-timings.txt" >&2
}
trap write_summary EXIT

log "kernel $(uname -r), $(nproc) CPUs, uptime $(cut -d' ' -f1 /proc/uptime) s"
log "zfs: $(cat /sys/module/zfs/version 2>/dev/null || echo 'module not loaded')"

# --- disks -----------------------------------------------------------------------------------
ls -l /dev/disk/by-id/ >&2
BYID=/dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_zdisk
disk() { printf '%s%02d' "$BYID" "$1"; }
for n in 1 2 3 4 5; do
    [[ -b $(disk "$n") ]] || {
        log "missing $(disk "$n")"
        exit 1
    }
done
log "udev names of $(disk 1):"
udevadm info --query=symlink --name="$(disk 1)" | tr ' ' '\n' | sed 's/^/    /' >&2

# --- ZFS -------------------------------------------------------------------------------------
step "zfs version" zfs version
step "zpool create" zpool create -o ashift=12 tank \
    raidz1 "$(disk 1)" "$(disk 2)" "$(disk 3)" log "$(disk 4)" spare "$(disk 5)"
step "zfs set compression=lz4" zfs set compression=lz4 tank
step "zfs create tank/x" zfs create tank/x
step "zfs snapshot tank/x@a" zfs snapshot tank/x@a
step "zfs list -p -t snapshot" zfs list -p -t snapshot
step "zfs destroy tank/x@a" zfs destroy tank/x@a
step "zpool status" zpool status tank
step "zpool destroy" zpool destroy tank

# --- PostgreSQL 15 ---------------------------------------------------------------------------
PGBIN=/usr/lib/postgresql/15/bin
as_postgres() { su postgres -s /bin/bash -c "$1"; }
step "pg initdb" as_postgres "$PGBIN/initdb -D /tmp/pgd > /tmp/initdb.log"
step "pg_ctl start" as_postgres "$PGBIN/pg_ctl -D /tmp/pgd -l /tmp/pg.log -o '-k /tmp -p 5499' -w start"
step "psql select 1" as_postgres "psql -h /tmp -p 5499 -X -c 'select 1'"
step "psql select version()" as_postgres "psql -h /tmp -p 5499 -X -Atc 'select version()'"
step "pg_ctl stop" as_postgres "$PGBIN/pg_ctl -D /tmp/pgd -m fast -w stop"

log "all steps passed"
