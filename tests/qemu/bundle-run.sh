#!/usr/bin/env bash
# Runs INSIDE the OpenZFS guest (as run.sh): the generated bundle in /ci/bundle, unmodified,
# as an operator would on the backup host, with real OpenZFS 2.x and Debian's PostgreSQL 15.
# The host side (tests/test_openzfs_guest.py) built the bundle from a spec whose disks are the
# guest's /dev/disk/by-id names and whose compression is lz4. Each check prints PASS or FAIL;
# the exit code is the number of failed checks (0: all passed).
set -uo pipefail
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
readonly B=/ci/bundle POOL=zp1 CLUSTER=pgq PGBIN=/usr/lib/postgresql/15/bin
readonly PASSWORD=guest-test-only
FAILED=0
T0=$EPOCHREALTIME

log() { printf '[guest %6.1fs] %s\n' "$(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { print b - a }')" "$*" >&2; }
pass() { log "PASS $*"; }
fail() {
  log "FAIL $*"
  FAILED=$((FAILED + 1))
}
check() { # check DESCRIPTION COMMAND...
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
runs() { # runs SCRIPT ARGS...: run a bundle script, log its output, fail the check on error
  local script=$1 rc=0
  shift
  log "run $script $*"
  "$B/$script" "$@" >/ci/last.out 2>&1 || rc=$?
  sed 's/^/    /' /ci/last.out >&2
  if ((rc == 0)); then pass "$script $* (exit 0)"; else fail "$script $* (exit $rc)"; fi
  return "$rc"
}
as_pg() { runuser -u postgres -- "$@"; }
primary_sql() { as_pg "$PGBIN/psql" -X -A -t -q -h /var/tmp -p 5499 -d postgres -c "$1"; }
# shellcheck disable=SC2329 # called through check and wait_for
standby_sql() { runuser -u "$CLUSTER" -- "$PGBIN/psql" -X -A -t -q -h "/$CLUSTER/pg_root" -p 19299 -U postgres -d postgres -c "$1"; }
# shellcheck disable=SC2329 # called through check
wait_for() { # wait_for SECONDS COMMAND...
  local deadline=$((SECONDS + $1))
  shift
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

# shellcheck disable=SC2329 # called through check and wait_for
standby_streams() { [[ $(standby_sql 'select status from pg_stat_wal_receiver') == streaming ]]; }
# shellcheck disable=SC2329 # called through check and wait_for
standby_has_a() { [[ $(standby_sql 'select count(*) from t') == 1 ]]; }

pool_part() {
  check "verify.sh: the bundle is intact" bash "$B/verify.sh"
  runs host/10-pool.sh --yes || return
  local status
  status=$(zpool status -P "$POOL")
  printf '%s\n' "$status" >&2
  check "raidz1 of 11 by-id disks" test "$(awk '/raidz1-0/ { on = 1; next } /^\t(logs|spares|cache)/ { on = 0 } on && /by-id\/.*zdisk/' <<<"$status" | wc -l)" -eq 11
  check "log device zdisk12" grep -qE 'logs' <<<"$status"
  check "spare zdisk13" grep -q 'zdisk13' <<<"$(awk '/spares/ { on = 1 } on' <<<"$status")"
  check "ashift=12" test "$(zpool get -H -o value ashift "$POOL")" = 12
  check "compression=lz4" test "$(zfs get -H -o value compression "$POOL")" = lz4
  check "atime=off canmount=off" test "$(zfs get -H -o value atime,canmount "$POOL" | tr '\n' ' ')" = "off off "
  local before after
  before=$(zpool history "$POOL")
  runs host/10-pool.sh --yes
  after=$(zpool history "$POOL")
  check "second pool run: zpool history unchanged" test "$before" = "$after"
  # encryption (the spec's encryption: {key: file}): refused until the key file is there
  local rc=0
  "$B/host/20-datasets.sh" >/ci/last.out 2>&1 || rc=$?
  sed 's/^/    /' /ci/last.out >&2
  check "encryption: refused without the key file, nothing created" \
    bash -c "((rc = $rc, rc == 3)) && ! zfs list $POOL/$CLUSTER >/dev/null 2>&1"
  install -d -m 0700 /etc/pitr-bundle/keys
  head -c 32 /dev/urandom >"/etc/pitr-bundle/keys/$CLUSTER.key"
  chmod 0400 "/etc/pitr-bundle/keys/$CLUSTER.key"
  runs host/20-datasets.sh || return
  for ds in "$CLUSTER" "pg_arch/$CLUSTER"; do
    check "encryption: $POOL/$ds aes-256-gcm, key available" \
      test "$(zfs get -H -o value encryption,keystatus "$POOL/$ds" | tr '\n' ' ')" = "aes-256-gcm available "
  done
  local ds
  for ds in pg_home pg_arch pg_log "$CLUSTER" "pg_arch/$CLUSTER"; do
    check "$POOL/$ds mounted" test "$(zfs get -H -o value mounted "$POOL/$ds")" = yes
  done
  runs host/20-datasets.sh
  check "second datasets run: nothing created" grep -q "0 created, 0 updated" /ci/last.out
}

postgres_part() {
  runs "clusters/$CLUSTER/30-user.sh" || return
  ln -sfn /usr/lib/postgresql/15 "/pg_home/$CLUSTER/pgsql"
  runs host/40-nfs-exports.sh || return
  # the primary, on this guest: its user writes the archive (root through NFS in production)
  chown postgres "/pg_arch/$CLUSTER" "/pg_arch/$CLUSTER/arch"
  install -m 0755 "$B/clusters/$CLUSTER/primary/pitr-archive-wal.sh" /usr/local/bin/pitr-archive-wal
  install -d -o postgres -g postgres -m 0700 /var/tmp/primary
  as_pg "$PGBIN/initdb" -N -A trust -U postgres -D /var/tmp/primary >/dev/null || { fail "initdb"; return; }
  install -o postgres -g postgres -m 0600 "$B/clusters/$CLUSTER/primary/pitr-archive.conf" /var/tmp/primary/
  printf "listen_addresses = '127.0.0.1'\nport = 5499\nunix_socket_directories = '/var/tmp'\ninclude 'pitr-archive.conf'\n" >>/var/tmp/primary/postgresql.conf
  { grep -v '^#' "$B/clusters/$CLUSTER/primary/pg_hba.conf.lines"; cat /var/tmp/primary/pg_hba.conf; } >/tmp/hba
  install -o postgres -g postgres -m 0600 /tmp/hba /var/tmp/primary/pg_hba.conf
  as_pg "$PGBIN/pg_ctl" -D /var/tmp/primary -w -l /var/tmp/primary.log start >/dev/null || { fail "primary start"; return; }
  primary_sql "create role replicator with replication login password '$PASSWORD'"
  primary_sql "create table t (id int primary key, note text)"
  export PITR_REPLICATION_PASSWORD=$PASSWORD
  runs "clusters/$CLUSTER/50-basebackup.sh" || return
  runs "clusters/$CLUSTER/60-standby.sh" || return
  check "the standby streams" wait_for 120 standby_streams

  primary_sql "insert into t values (1, 'A')"
  check "row A on the standby" wait_for 60 standby_has_a
  # older snapshots of this script's own naming, for the pruning to batch
  local i
  for i in 1 2 3 4 5; do zfs snapshot "$POOL/$CLUSTER@pitr-2020010${i}T000000Z"; done
  zfs snapshot "$POOL/$CLUSTER@keep-me-manual"
  runs "clusters/$CLUSTER/snapshot.sh"
  # keep daily 2: today's new one and the newest old day (01-05); 01-01..01-04 go, in one call
  # (the log shell-quotes the command: printf %q writes the commas as \,)
  tr -d "\\\\" </ci/last.out >/ci/last.unquoted
  check "OpenZFS: one batched destroy for the 4 old snapshots" grep -qF \
    "run: zfs destroy -d $POOL/$CLUSTER@pitr-20200101T000000Z,pitr-20200102T000000Z,pitr-20200103T000000Z,pitr-20200104T000000Z" /ci/last.unquoted
  check "the manual snapshot kept" zfs list -H "$POOL/$CLUSTER@keep-me-manual"
  # one zfs snapshot call for the cluster's dataset and its archive's (OpenZFS): one name
  local newest
  newest=$(zfs list -H -t snapshot -o name -s creation -d 1 "$POOL/$CLUSTER" | grep '@pitr-2' | grep -v '@pitr-2020' | tail -n 1)
  check "OpenZFS: the archive snapshotted in the same call, same name (${newest#*@})" \
    zfs list -H "$POOL/pg_arch/$CLUSTER@${newest#*@}"
  check "OpenZFS: one zfs snapshot call for both" grep -qF \
    "$POOL/$CLUSTER@${newest#*@} $POOL/pg_arch/$CLUSTER@${newest#*@}" /ci/last.unquoted
  check "one old snapshot kept (01-05)" test "$(zfs list -H -t snapshot -o name -r "$POOL/$CLUSTER" | grep -c '@pitr-2020')" = 1
  check "zfs list -p gives creation as epoch seconds" bash -c "zfs list -H -p -t snapshot -o creation -r $POOL/$CLUSTER | grep -qE '^[0-9]{10}$'"
  sleep 2
  local target
  target=$(date -u '+%Y-%m-%d %H:%M:%S+00')
  sleep 2
  primary_sql "insert into t values (2, 'B')"
  primary_sql "select pg_switch_wal()" >/dev/null
  check "B archived" wait_for 60 bash -c "ls /pg_arch/$CLUSTER/arch/*/ | grep -c '^0000' | grep -qv '^0$'"
  sleep 3
  runs "clusters/$CLUSTER/restore.sh" --target-time "$target" --name t1 --yes
  check "the clone is where the spec says" test "$(zfs get -H -o value mountpoint "$POOL/restore/$CLUSTER-t1")" = "/pg_restore/$CLUSTER-t1"
  local rows
  rows=$(runuser -u "$CLUSTER" -- "$PGBIN/psql" -X -A -t -q -h "/pg_restore/$CLUSTER-t1/pg_root" -p 20299 -U postgres -d postgres -c "select string_agg(note, ',' order by id) from t" 2>&1)
  check "restored to T: A and not B (got '$rows')" test "$rows" = A
  # a restore drill to T beside restore t1 (the next port), recorded: the monitor needs one
  runs "clusters/$CLUSTER/drill.sh" --target-time "$target"
  check "the drill recorded ok" grep -qx 'result=ok' "/var/lib/pitr-bundle/drill-$CLUSTER.state"
  check "the drill's clone removed" bash -c "! zfs list $POOL/restore/$CLUSTER-drill"
  runs host/monitor.sh
  runs "clusters/$CLUSTER/restore.sh" --cleanup t1 --yes
  check "clone removed" bash -c "! zfs list $POOL/restore/$CLUSTER-t1"
}

main() {
  log "OpenZFS $(cat /sys/module/zfs/version 2>/dev/null || echo '?'), kernel $(uname -r)"
  pool_part
  postgres_part
  log "done: $FAILED failed check(s)"
  exit "$FAILED"
}

main "$@"
