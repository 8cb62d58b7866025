#!/usr/bin/env bash
# The system tier's scenario. Runs INSIDE the guest booted with systemd as PID 1 (run-guest.sh
# --systemd), as /ci/run.sh: the example specs' bundle (built by tests/test_system_guest.py
# from a spec derived from specs/ by changing disks and addresses, the PostgreSQL version to
# the guest's Debian 15, the packaged-binaries field, the primary's unit and the snapshot
# schedule) in /ci/bundle, unmodified, run as an operator would, on real services:
#   - the backup host is the guest's own network stack: real OpenZFS, Debian's
#     nfs-kernel-server with the generated exports and ports, cron, the standby;
#   - the primary is another machine on the wire: Debian's PostgreSQL 15 clusters
#     (postgresql@15-main, postgresql@15-second, Debian layout under /etc/postgresql) whose
#     units and archive mount units run in the network namespace "primary", joined to the
#     backup host by a veth pair. Only systemd drop-ins (NetworkNamespacePath=) put them
#     there: the generated files stay as generated.
# Values come from /ci/scenario.env (written by the test from the spec and MANIFEST.json).
# Each check prints PASS or FAIL with its name; the exit code is the number of failed checks.
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# shellcheck source=/dev/null # written by tests/test_system_guest.py
source /ci/scenario.env
readonly B=/ci/bundle NETNS=primary PGBIN=/usr/lib/postgresql/15/bin
readonly FOREIGN_ARCHIVE='cp %p /var/lib/postgresql/other-tool/%f'
FAILED=0
T0=$EPOCHREALTIME

log() { printf '[guest %6.1fs] %s\n' "$(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')" "$*" >&2; }
pass() { log "PASS $*"; }
fail() {
  log "FAIL $*"
  FAILED=$((FAILED + 1))
}
check() { # check NAME COMMAND...: its status is the command's
  local what=$1
  shift
  if "$@"; then
    pass "$what"
  else
    fail "$what"
    return 1
  fi
}
# expect NAME EXPECTED ACTUAL: a check that shows both values
expect() {
  if [[ $3 == "$2" ]]; then pass "$1 ('$3')"; else fail "$1 (expected '$2', got '$3')"; fi
}
# runs [--on-primary] [--expect RC] SCRIPT ARGS...: run a bundle script as root, show its output
# (of /ci/bundle, or of BUNDLE_DIR when set)
runs() {
  local want=0 prefix=() rc=0
  while [[ $1 == --* ]]; do
    case $1 in
      --on-primary) prefix=(nsenter "--net=/run/netns/$NETNS") ;;
      --expect) want=$2 && shift ;;
    esac
    shift
  done
  local script=$1
  shift
  log "run ${prefix[*]:+(on the primary) }$script $*"
  "${prefix[@]}" "${BUNDLE_DIR:-$B}/$script" "$@" </dev/null >/ci/last.out 2>&1 || rc=$?
  sed 's/^/    /' /ci/last.out >&2
  if ((rc == want)); then pass "$script $* (exit $rc)"; else fail "$script $* (exit $rc, expected $want)"; fi
  ((rc == want))
}
# shellcheck disable=SC2329 # called through check
wait_for() { # wait_for SECONDS COMMAND...
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}
# sql_primary PORT SQL: as postgres over the primary's Unix socket
sql_primary() { runuser -u postgres -- "$PGBIN/psql" -X -A -t -q -p "$1" -d postgres -c "$2"; }
sql_main() { sql_primary "$PORT1" "$1"; }
# shellcheck disable=SC2329 # called through check and wait_for
sql_standby() { runuser -u "$CLUSTER1" -- "$PGBIN/psql" -X -A -t -q -h "$PGDATA1" -p "$STANDBY_PORT1" -U postgres -d postgres -c "$1"; }

# The boot as a host would have it. Under emulation on a loaded machine udev may take longer
# than systemd-udev-settle's 3 minutes, and then the units that require it (the zfs module,
# the nfsd file system) fail: let udev finish and start them again, as an admin would.
boot_units() {
  local failed
  failed=$(systemctl --failed --plain --no-legend 2>&1)
  if [[ -n $failed ]]; then
    log "units failed at boot (emulation is slow): $(tr -s ' \n' ' ' <<<"$failed")"
    udevadm settle --timeout=600
    systemctl reset-failed
    systemctl start systemd-udev-settle.service zfs-load-module.service zfs.target \
      proc-fs-nfsd.mount nfs-server.service >&2
  fi
  # (is-system-running says "starting" while this unit runs: the boot job waits for it)
  expect "no failed units after boot" "" "$(systemctl --failed --plain --no-legend 2>&1)"
  check "the zfs module is loaded" test -d /sys/module/zfs
  check "nfs-server active" systemctl is-active --quiet nfs-server
}

# --- the wire: the backup host (this stack) and the primary (netns) -------------------------
network() {
  ip netns add "$NETNS"
  ip link add "$IFACE" type veth peer name "$IFACE" netns "$NETNS"
  ip addr add "$HOST_ADDR/$PREFIXLEN" dev "$IFACE"
  ip link set "$IFACE" up
  ip -n "$NETNS" link set lo up
  ip -n "$NETNS" addr add "$PRIMARY_ADDR/$PREFIXLEN" dev "$IFACE"
  ip -n "$NETNS" link set "$IFACE" up
  check "the primary ($PRIMARY_ADDR, netns) reaches the backup host ($HOST_ADDR)" \
    wait_for 20 ip netns exec "$NETNS" ping -c1 -W1 "$HOST_ADDR"
  # The primary machine's own rpcbind and rpc.statd: mount.nfs asks for statd on the
  # primary's loopback for an NFSv3 mount with locking. They get a private /run and
  # /var/lib/nfs so they do not collide with the backup host's.
  nsenter "--net=/run/netns/$NETNS" unshare --mount --propagation private bash -c '
    set -e
    mount -t tmpfs -o mode=0755 tmpfs /run
    mount -t tmpfs -o mode=0755 tmpfs /var/lib/nfs
    install -d -o _rpc -m 0755 /run/rpcbind
    install -d -o statd -g nogroup -m 0700 /var/lib/nfs/sm /var/lib/nfs/sm.bak
    rpcbind -w
    rpc.statd --no-notify
  ' >&2 || fail "rpcbind + rpc.statd of the primary"
  check "the primary's statd answers on its loopback" ip netns exec "$NETNS" rpcinfo -T udp 127.0.0.1 status
}

# --- the backup host -----------------------------------------------------------------------
backup_host() {
  check "verify.sh: the bundle is intact" bash "$B/verify.sh"
  udevadm settle --timeout=300
  # zpool create waits 30 s for udev's links of the new partitions; a loaded emulated guest
  # can be slower (seen: "one or more devices is currently unavailable"). The operator's
  # answer is the bundle's: run the script again (re-runs after a failure are supported).
  if ! "$B/host/10-pool.sh" --yes >/ci/last.out 2>&1; then
    sed 's/^/    /' /ci/last.out >&2
    log "NOTE host/10-pool.sh failed once (udev under emulation); settling and running it again"
    udevadm settle --timeout=300
    if ! zpool list "$POOL" >/dev/null 2>&1; then # the half-made labels of the failed create
      local disk
      for disk in /dev/disk/by-id/scsi-0QEMU_QEMU_HARDDISK_zdisk??; do
        wipefs -a -q "$disk" && blockdev --rereadpt "$disk"
      done
    fi
    udevadm settle --timeout=300
  fi
  runs host/10-pool.sh --yes || return
  runs host/20-datasets.sh || return
  # the bundle's order: the clusters' users (and their binaries check) before the exports
  local n user build
  for n in 1 2; do
    user=CLUSTER$n build=BUILD$n
    runs "clusters/${!user}/30-user.sh" || return
    [[ -z ${!build} ]] || runs "${!build}" || return
  done
  runs host/40-nfs-exports.sh || return
  # the script says to restart the NFS services for the pinned ports (the runbook's step)
  systemctl restart rpc-statd nfs-server >&2 || fail "restart of nfs-server and rpc-statd"
  check "nfs-server active" systemctl is-active --quiet nfs-server
  local rpc
  rpc=$(rpcinfo -p 2>&1)
  printf '%s\n' "$rpc" | sed 's/^/    /' >&2
  check "mountd on the pinned port $MOUNTD_PORT" grep -qE "tcp +$MOUNTD_PORT +mountd" <<<"$rpc"
  check "statd on the pinned port $STATD_PORT" grep -qE "tcp +$STATD_PORT +status" <<<"$rpc"
  check "lockd on the pinned port $LOCKD_TCP_PORT" grep -qE "tcp +$LOCKD_TCP_PORT +nlockmgr" <<<"$rpc"
  local exports
  exports=$(exportfs -v 2>&1)
  printf '%s\n' "$exports" | sed 's/^/    /' >&2
  check "exported: /pg_arch/$CLUSTER1 to $PRIMARY_ADDR" grep -qE "^/pg_arch/${CLUSTER1}[[:space:]]+$PRIMARY_ADDR" <<<"$(exportfs -s)"
  check "exported: /pg_arch/$CLUSTER2 to $PRIMARY_ADDR" grep -qE "^/pg_arch/${CLUSTER2}[[:space:]]+$PRIMARY_ADDR" <<<"$(exportfs -s)"
}

vip() {
  if [[ -z $VIP_SCRIPT ]]; then
    fail "the bundle has a VIP script (MANIFEST role vip)"
    return 1
  fi
  runs "$VIP_SCRIPT" --yes || return
  check "VIP $VIP on $IFACE" grep -qF " $VIP/" <<<"$(ip -o addr show dev "$IFACE")"
  local route
  route=$(ip route get "$PRIMARY_ADDR" 2>&1)
  log "ip route get $PRIMARY_ADDR: $route"
  check "connections to the primary leave from the VIP" grep -qE "src $VIP( |$)" <<<"$route"
  runs "$VIP_SCRIPT" --yes
  check "VIP script re-run: nothing changed" grep -qiE 'already|nothing to do' /ci/last.out
}

# --- the primary: Debian clusters in the netns, preset as a user's primary would be ----------
# debian_cluster NAME PORT DATADIR: created, units joined to the netns, not started
debian_cluster() {
  local name=$1 port=$2 datadir=$3 unit="postgresql@15-$1.service"
  install -d -o postgres -g postgres "${datadir%/*}"
  pg_createcluster 15 "$name" -p "$port" -d "$datadir" >&2 || { fail "pg_createcluster 15 $name"; return 1; }
  install -d "/etc/systemd/system/$unit.d"
  printf '[Service]\n# the primary machine of the system test: its own network stack\nNetworkNamespacePath=/run/netns/%s\n' \
    "$NETNS" >"/etc/systemd/system/$unit.d/pitr-test-netns.conf"
  pg_conftool 15 "$name" set listen_addresses '*'
}

primaries() {
  install -d -o postgres -g postgres /var/lib/postgresql/other-tool
  debian_cluster main "$PORT1" "$DATADIR1" || return
  # main: what another tool left behind: logical decoding in use, a foreign archive_command
  pg_conftool 15 main set wal_level logical
  pg_conftool 15 main set archive_mode on
  pg_conftool 15 main set archive_command "$FOREIGN_ARCHIVE"
  debian_cluster second "$PORT2" "$DATADIR2" || return
  # the primaries' archive mounts belong to the primary machine too (drop-ins for the
  # generated units, written before the units exist)
  local unit
  for unit in "$MOUNT_UNIT1" "$MOUNT_UNIT2"; do
    install -d "/etc/systemd/system/$unit.d"
    printf '[Service]\nNetworkNamespacePath=/run/netns/%s\n' "$NETNS" >"/etc/systemd/system/$unit.d/pitr-test-netns.conf"
  done
  systemctl daemon-reload
  systemctl start postgresql@15-main postgresql@15-second >&2 || { fail "start of the Debian primaries"; return 1; }
  check "postgresql@15-main runs in the netns" test "$(ip netns identify "$(systemctl show -p MainPID --value postgresql@15-main)")" = "$NETNS"
  sql_main "select pg_create_logical_replication_slot('other_consumer', 'test_decoding')" >/dev/null
  sql_main "create role $REPL_USER1 with replication login password '$PASSWORD'"
  sql_main "create table t (id int primary key, note text)"
  sql_primary "$PORT2" "alter role postgres password '$PASSWORD'"
  sql_primary "$PORT2" "create table t2 (id int)"
  expect "preset: wal_level of main" logical "$(sql_main 'show wal_level')"
  expect "preset: archive_command of main" "$FOREIGN_ARCHIVE" "$(sql_main 'show archive_command')"
}

primary_step() {
  local hba_before conf_before
  hba_before=$(sha256sum /etc/postgresql/15/main/pg_hba.conf)
  conf_before=$(cat /etc/postgresql/15/main/postgresql.conf /etc/postgresql/15/main/conf.d/* 2>/dev/null | sha256sum)
  runs --on-primary --expect 3 "clusters/$CLUSTER1/primary/45-apply-on-primary.sh" --yes
  check "refusal names the current archive_command" grep -qF "$FOREIGN_ARCHIVE" /ci/last.out
  check "refusal changed nothing: no helper $HELPER1" test ! -e "$HELPER1"
  check "refusal changed nothing: no sudo rule" test ! -e "$SUDOERS1"
  expect "refusal changed nothing: pg_hba.conf" "$hba_before" "$(sha256sum /etc/postgresql/15/main/pg_hba.conf)"
  expect "refusal changed nothing: postgresql.conf" "$conf_before" \
    "$(cat /etc/postgresql/15/main/postgresql.conf /etc/postgresql/15/main/conf.d/* 2>/dev/null | sha256sum)"

  runs --on-primary "clusters/$CLUSTER1/primary/45-apply-on-primary.sh" --replace-archive-command "${PRIMARY_APPLY_FLAGS[@]}" --yes
  check "the step writes the include next to Debian's config file" test -f /etc/postgresql/15/main/pitr-archive.conf
  # a restart, not just the reload the step asks for: a wal_level the include lowered, or
  # settings the server refuses, would show only now
  check "postgresql@15-main restarts with the new settings" systemctl restart postgresql@15-main
  expect "wal_level stays logical" logical "$(sql_main 'show wal_level')"
  check "archive_command is the helper's" grep -qF "$HELPER1" <<<"$(sql_main 'show archive_command')"
  expect "the logical slot survives" other_consumer "$(sql_main "select slot_name from pg_replication_slots where slot_type = 'logical'")"
  check "replication lines in Debian's pg_hba.conf" grep -qE "replication +$REPL_USER1 +$VIP/32" /etc/postgresql/15/main/pg_hba.conf
  check "sudo rule installed and valid" visudo -c -q -f "$SUDOERS1"
  runs --on-primary "clusters/$CLUSTER1/primary/45-apply-on-primary.sh" --replace-archive-command "${PRIMARY_APPLY_FLAGS[@]}" --yes
  check "primary step re-run: already in place" grep -q 'already' /ci/last.out

  runs --on-primary "clusters/$CLUSTER2/primary/45-apply-on-primary.sh" "${PRIMARY_APPLY_FLAGS[@]}" --yes
  # archive_mode was off: the restart the step asks for
  check "postgresql@15-second restarts with the new settings" systemctl restart postgresql@15-second
  expect "second cluster: archive_mode after the step" on "$(sql_primary "$PORT2" 'show archive_mode')"
}

archive_mounts() { # the generated units make the NFS mounts, in the primary's netns
  local n unit mnt
  for n in 1 2; do
    unit=MOUNT_UNIT$n mnt=ARCHIVE_MOUNT$n
    unit=${!unit} mnt=${!mnt}
    # what a boot does: the enabled unit mounts the export
    umount "$mnt" 2>/dev/null
    systemctl restart "$unit" >&2
    check "$unit active" systemctl is-active --quiet "$unit"
    expect "$mnt is an NFS mount of the VIP's export" "$VIP:/pg_arch/$(cluster_of "$n") nfs" \
      "$(findmnt -n -o SOURCE,FSTYPE "$mnt" | tr -s ' ')"
  done
  local peers
  peers=$(ss -Htn state established '( sport = :2049 )')
  log "NFS connections on the backup host: $(tr -s ' \n' ' ' <<<"$peers")"
  check "the NFS server sees the primary's address as client" grep -qE "$VIP:2049 +$PRIMARY_ADDR:" <<<"$peers"
}
cluster_of() { local c=CLUSTER$1; printf '%s' "${!c}"; }

# sysid_of_wal FILE: the system identifier in a WAL segment's long page header (offset 24)
sysid_of_wal() { od -An -t u8 -j 24 -N 8 "$1" | tr -d ' '; }
sysid_of_cluster() { runuser -u postgres -- "$PGBIN/pg_controldata" "$1" | awk -F': *' '/Database system identifier/ { print $2 }'; }
wal_files() { find "/pg_arch/$1/arch" -type f -regextype egrep -regex '.*/[0-9A-F]{24}$' 2>/dev/null; }

archiving() {
  local n port cluster datadir sysid f mixed
  for n in 1 2; do
    port=PORT$n cluster=CLUSTER$n datadir=DATADIR$n
    port=${!port} cluster=${!cluster} datadir=${!datadir}
    sql_primary "$port" "select pg_switch_wal()" >/dev/null
    sql_primary "$port" "select pg_switch_wal()" >/dev/null
    check "$cluster: WAL archived to /pg_arch/$cluster over NFS" wait_for 90 bash -c "[[ -n \$(find /pg_arch/$cluster/arch -type f -name '0000*') ]]"
    expect "$cluster: archiver failures" 0 "$(sql_primary "$port" 'select failed_count from pg_stat_archiver')"
    sysid=$(sysid_of_cluster "$datadir")
    mixed=0
    while read -r f; do
      [[ -n $f ]] || continue
      [[ $(sysid_of_wal "$f") == "$sysid" ]] || { log "    $f: system id $(sysid_of_wal "$f"), not $sysid"; mixed=1; }
    done < <(wal_files "$cluster")
    check "$cluster: every WAL file in its folder is its own (system id $sysid)" test "$mixed" = 0
  done
  check "the archive helper ran through sudo as postgres" \
    grep -q "postgres : .*COMMAND=$HELPER1" <<<"$(journalctl -b --no-pager _COMM=sudo 2>/dev/null)"
}

# --- the standby on the backup host ----------------------------------------------------------
# shellcheck disable=SC2329 # called through wait_for
standby_streams() { [[ $(sql_standby 'select status from pg_stat_wal_receiver') == streaming ]]; }
# shellcheck disable=SC2329 # called through wait_for
standby_has_a() { [[ $(sql_standby 'select count(*) from t') == 1 ]]; }

standby() {
  export PITR_REPLICATION_PASSWORD=$PASSWORD
  runs "clusters/$CLUSTER1/50-basebackup.sh" --yes || return
  runs "clusters/$CLUSTER1/60-standby.sh" --yes || return
  check "the standby streams" wait_for 120 standby_streams || return
  expect "the standby's connection arrives from the VIP (pg_stat_replication.client_addr)" "$VIP" \
    "$(sql_main "select client_addr from pg_stat_replication where usename = '$REPL_USER1'")"
  expect "the standby streams through slot $SLOT1 (pg_replication_slots.active)" t \
    "$(sql_main "select active from pg_replication_slots where slot_name = '$SLOT1'")"
  local pid
  pid=$(head -n1 "$PGDATA1/postmaster.pid" 2>/dev/null)
  expect "the standby runs the packaged binaries" "$PGBIN/postgres" "$(readlink "/proc/$pid/exe" 2>/dev/null)"
  sql_main "insert into t values (1, 'A')"
  check "row A on the standby" wait_for 60 standby_has_a
}

# --- snapshots by cron, restore, monitor -----------------------------------------------------
# shellcheck disable=SC2329 # called through wait_for
archived_past() { # archived_past SEGMENT: the primary's archiver reached SEGMENT
  local last
  last=$(sql_main 'select last_archived_wal from pg_stat_archiver')
  [[ -n $last && ! $last < $1 ]]
}

snapshot_restore() {
  runs "clusters/$CLUSTER1/70-install-snapshot-cron.sh" --yes || return
  check "cron daemon active" systemctl is-active --quiet cron
  check "the cron entry is installed" test -f "/etc/cron.d/pitr-bundle-$CLUSTER1"
  # cron fires the entry at the next minute (the test spec's schedule: every minute)
  check "cron took a snapshot" wait_for 150 bash -c "(( \$(zfs list -H -t snapshot -o name -d 1 $POOL/$CLUSTER1 | grep -c '@$SNAP_PREFIX') > 0 ))"
  check "cron ran the snapshot command" grep -q "pitr-snapshot-$CLUSTER1" <<<"$(journalctl -b --no-pager -u cron 2>/dev/null)"
  zfs list -H -t snapshot -o name,creation -d 1 "$POOL/$CLUSTER1" | sed 's/^/    /' >&2
  sleep 2
  local target rows
  target=$(date -u '+%Y-%m-%d %H:%M:%S+00')
  sleep 2
  sql_main "insert into t values (2, 'B')"
  B_SEGMENT=$(sql_main "select pg_walfile_name(pg_current_wal_lsn())")
  sql_main "select pg_switch_wal()" >/dev/null
  check "the WAL with B archived" wait_for 90 archived_past "$B_SEGMENT"
  runs "clusters/$CLUSTER1/restore.sh" --target-time "$target" --name t1 --yes || return
  rows=$(runuser -u "$CLUSTER1" -- "$PGBIN/psql" -X -A -t -q -h "$RESTORE_PARENT_MNT/$CLUSTER1-t1/pg_root" -p "$RESTORE_PORT1" \
    -U postgres -d postgres -c "select string_agg(note, ',' order by id) from t" 2>&1)
  expect "restored to the time: row A present, row B absent" A "$rows"
  # the weekly drill installed as a user would, then run once by hand to the same time (the
  # monitor is CRITICAL until a drill has succeeded), beside restore t1 on the next port
  runs "clusters/$CLUSTER1/75-install-drill-cron.sh" --yes || return
  check "the drill's cron entry is installed" test -f "/etc/cron.d/pitr-bundle-$CLUSTER1-drill"
  runs "clusters/$CLUSTER1/drill.sh" --target-time "$target"
  check "the drill recorded ok" grep -qx 'result=ok' "/var/lib/pitr-bundle/drill-$CLUSTER1.state"
  check "the drill's clone removed" bash -c "! zfs list $POOL/restore/$CLUSTER1-drill"
  runs host/monitor.sh --cluster "$CLUSTER1"
  check "the monitor says OK" grep -q '^PITR OK' /ci/last.out
  runs "clusters/$CLUSTER1/restore.sh" --cleanup t1 --yes
  check "the clone is gone after --cleanup" bash -c "! zfs list $POOL/restore/$CLUSTER1-t1"
}

# --- the backup host's NFS server gone: the primary never waits on it (issue 24) -----------
# shellcheck disable=SC2329 # called through wait_for
archive_failed_past() { # archive_failed_past COUNT: pg_stat_archiver.failed_count is past COUNT
  (($(sql_main 'select failed_count from pg_stat_archiver') > $1))
}
# write_and_switch NOTE: a row and a WAL switch on main; SEGMENT is the segment switched from
write_and_switch() {
  sql_main "insert into t values ((select max(id) + 1 from t), '$1')"
  SEGMENT=$(sql_main "select pg_walfile_name(pg_current_wal_lsn())")
  sql_main "select pg_switch_wal()" >/dev/null
}

# The NFS server is stopped (systemctl stop nfs-server: knfsd closes its port, and a hard mount
# retries a refused connection without end, as it does a silent server) while main writes.
nfs_server_gone() {
  local bound failed started took n dropped=/var/lib/pitr-bundle/$CLUSTER1-dropped-wal
  bound=$(sed -n 's/^readonly CALL_TIMEOUT=\([0-9]*\)$/\1/p' "$HELPER1")
  check "the archive helper has a bound (primary.archive_call_timeout: ${bound:-none} s)" test -n "$bound" || return
  systemctl stop nfs-server >&2 || fail "stop of nfs-server"
  failed=$(sql_main 'select failed_count from pg_stat_archiver')
  started=$SECONDS
  write_and_switch C
  check "commits go on with the NFS server gone" test $((SECONDS - started)) -le 5
  check "an archive call failed within its bound" wait_for $((bound + 10)) archive_failed_past "$failed"
  log "    the first failure after $((SECONDS - started)) s"
  check "the helper logged what timed out" \
    grep -q 'timed out: .*primary.archive_call_timeout' <<<"$(journalctl -b --no-pager -t pitr-archive-wal 2>/dev/null)"
  # past the queue limit (64MB: four segments) the oldest waiting files are dropped
  for n in 1 2 3 4 5; do write_and_switch "D$n"; done
  check "the queue limit drops and counts with the NFS server gone" wait_for $((4 * bound + 30)) test -s "$dropped"
  log "    $(cat "$dropped" 2>/dev/null)"
  started=$SECONDS
  check "systemctl stop of the primary completes within 60 s" timeout 60 systemctl stop postgresql@15-main
  took=$((SECONDS - started))
  log "    systemctl stop took $took s"
  systemctl start nfs-server >&2 || fail "start of nfs-server"
  systemctl start postgresql@15-main >&2 || { fail "start of postgresql@15-main"; return 1; }
  write_and_switch E
  check "archiving resumes when the NFS server is back" wait_for 120 archived_past "$SEGMENT"
  runs --expect 2 host/monitor.sh --cluster "$CLUSTER1"
  check "the monitor names the gap" grep -qE "the primary dropped [0-9]+ WAL file|archive gap" /ci/last.out
}

# --- moving pg168121 to archive.method standby: the standby archives, the primary's NFS goes ---
# /ci/bundle-standby: the same derived specs with pg168121's archive.method standby (the option
# under test), built beside /ci/bundle, run in the order docs/wal-transport.md gives.
# shellcheck disable=SC2329 # called through wait_for
slot_active() { [[ $(sql_main "select active from pg_replication_slots where slot_name = '$SLOT1'") == t ]]; }
# shellcheck disable=SC2329 # called through wait_for
archived_by_standby() { [[ -n $(find "/pg_arch/$CLUSTER1/arch" -name "$1" -user "$CLUSTER1") ]]; }
# shellcheck disable=SC2329 # called through wait_for
standby_has() { [[ $(sql_standby "select count(*) from t where note = '$1'") == 1 ]]; }
move_to_standby_archiving() {
  local SB=/ci/bundle-standby target rows
  [[ -d $SB ]] || { fail "no standby-method bundle in $SB"; return 1; }
  # the per-minute cron (proven above) stops here: its retention keeps one snapshot an hour,
  # so it would prune the snapshot taken by hand below before the restore reads it (CI run of
  # stop 30), and a run of it would hold the lock the manual run needs
  rm -f "/etc/cron.d/pitr-bundle-$CLUSTER1"
  check "no snapshot run in flight" flock -w 120 "/run/lock/pitr-snapshot-$CLUSTER1.lock" true
  export PITR_REPLICATION_PASSWORD=$PASSWORD
  # 1. the standby archives what it receives (archive_mode = always), both archive meanwhile
  BUNDLE_DIR=$SB runs "clusters/$CLUSTER1/60-standby.sh" --restart --yes || return
  check "the standby streams again" wait_for 120 standby_streams || return
  expect "the standby archives what it receives" always "$(sql_standby 'show archive_mode')"
  check "through slot $SLOT1 again" wait_for 60 slot_active || return
  # 2. the primary moved off the NFS path by the standby bundle's step
  BUNDLE_DIR=$SB runs --on-primary "clusters/$CLUSTER1/primary/45-apply-on-primary.sh" --restart --yes || return
  check "the primary step moved main off the NFS path" grep -q "no longer archives over NFS from this node" /ci/last.out
  expect "main's archive_command is the other tool's again" "$FOREIGN_ARCHIVE" "$(sql_main 'show archive_command')"
  check "no sudo rule on the primary any more" test ! -e "$SUDOERS1"
  check "no archive mount unit on the primary any more" test ! -e "/etc/systemd/system/$MOUNT_UNIT1"
  check "the archive is no longer mounted on the primary" bash -c "! findmnt -n '$ARCHIVE_MOUNT1' >/dev/null"
  # the guest is both machines on one file system, where the primary's helper and the
  # standby's share a path: the move removed it, and 60-standby.sh (idempotent) puts the
  # standby's back (on two machines the two never meet)
  BUNDLE_DIR=$SB runs "clusters/$CLUSTER1/60-standby.sh" --yes || return
  # 3. the standby alone archives; a restore from its archive: F present, G absent
  write_and_switch F
  check "the standby archived the segment with F" wait_for 90 archived_by_standby "$SEGMENT" || return
  check "F replayed on the standby" wait_for 60 standby_has F
  sql_standby "checkpoint" >/dev/null
  BUNDLE_DIR=$SB runs "clusters/$CLUSTER1/snapshot.sh" || return
  sleep 2
  target=$(date -u '+%Y-%m-%d %H:%M:%S+00')
  sleep 2
  write_and_switch G
  check "the standby archived the segment with G" wait_for 90 archived_by_standby "$SEGMENT" || return
  BUNDLE_DIR=$SB runs "clusters/$CLUSTER1/restore.sh" --target-time "$target" --name t2 --yes || return
  rows=$(runuser -u "$CLUSTER1" -- "$PGBIN/psql" -X -A -t -q -h "$RESTORE_PARENT_MNT/$CLUSTER1-t2/pg_root" -p "$RESTORE_PORT1" \
    -U postgres -d postgres -c "select count(*) filter (where note = 'F') || ',' || count(*) filter (where note = 'G') from t" 2>&1)
  expect "restored from the standby's archive: row F present, row G absent" "1,0" "$rows"
  BUNDLE_DIR=$SB runs "clusters/$CLUSTER1/restore.sh" --cleanup t2 --yes
}

# what a failed run needs for its diagnosis, into /ci/diag.txt
diagnostics() {
  {
    echo "== ip (backup host)"; ip -br addr; ip route
    echo "== ip (primary netns)"; ip -n "$NETNS" -br addr; ip -n "$NETNS" route
    echo "== mounts"; findmnt -t nfs,nfs4,zfs
    echo "== units"; systemctl --no-pager list-units 'postgresql*' 'pitr*' 'nfs*' 'rpc*' cron.service
    echo "== failed"; systemctl --no-pager --failed
    echo "== rpcinfo"; rpcinfo -p
    echo "== exports"; exportfs -v
    echo "== zfs"; zfs list -t all -o name,mountpoint,creation
    local f
    for f in /var/log/postgresql/*.log "/pg_log/$CLUSTER1"/*/* "/pg_log/$CLUSTER1"/*; do
      [[ -f $f ]] && { echo "== $f"; tail -n 40 "$f"; }
    done
    echo "== /etc/cron.d"; head -n 50 /etc/cron.d/pitr* 2>&1
  } >/ci/diag.txt 2>&1
}

main() {
  log "systemd $(systemctl --version | head -n1 | cut -d' ' -f2) as PID 1 ($(ps -o comm= -p 1)); OpenZFS $(cat /sys/module/zfs/version 2>/dev/null || echo '?'); kernel $(uname -r)"
  boot_units
  network
  backup_host
  vip
  primaries && primary_step
  archive_mounts
  archiving
  standby && snapshot_restore
  nfs_server_gone
  move_to_standby_archiving
  diagnostics
  log "done: $FAILED failed check(s)"
  exit "$FAILED"
}

main "$@"
