# The worlds of a retired cluster's scripts (roles retire and primary-remove), for retire.bats
# and faults.bats: the first retired cluster of the bundle's MANIFEST (facts['retired']).

# retired_fact EXPR: a fact of the first retired cluster, e.g. retired_fact "['dataset']"
retired_fact() {
  query "facts['retired'][0]$1"
}

# setup_retired: stubs, fake accounts and ownership, the retired cluster's names; skips the
# test when the bundle has no retired cluster
setup_retired() {
  [[ -n $(query "[r['name'] for r in facts.get('retired', [])][:1]") ]] || skip "no retired cluster in this bundle"
  setup_stubs
  fake_ownership
  fake_users
  # shellcheck disable=SC2034 # make_pool (test_helper.bash) creates the pool of this name
  POOL=$(query "facts['pool']['name']")
  NAME=$(retired_fact "['name']")
  USER_NAME=$(retired_fact "['user']")
  DATASET=$(retired_fact "['dataset']")
  ARCHIVE_DATASET=$(retired_fact "['archive_dataset']")
  MOUNTPOINT=$(retired_fact "['mountpoint']")
  PGHOME=$BATS_TEST_TMPDIR/pghome
  # pg_ctl keeps "running" as postmaster.pid (as fake_pghome's, which needs an active cluster)
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  STUB_TARGET=$PGHOME/bin stub pg_ctl '
data=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [[ ${args[i]} == -D ]] && data=${args[i+1]}; done
case " $* " in
  *" status "*) [[ -f $data/postmaster.pid ]] ;;
  *" stop"*) rm -f "$data/postmaster.pid" ;;
esac'
}

# a_retired_world [dataset]: what a cluster leaves on the backup host when its spec is marked
# retired: its running standby, cron files and installed scripts, a monitor check naming it,
# its dataset with two snapshots, an archive whose newest WAL is an hour old (a folder, as on a
# host never migrated; with "dataset", its own dataset ARCHIVE_DATASET mounted at $SANDBOX/arch,
# mounts simulated, with two snapshots), an exports file without it
a_retired_world() {
  local name
  make_pool
  "$STUB_BIN/zfs" create -p -o "mountpoint=$MOUNTPOINT" "$DATASET"
  "$STUB_BIN/zfs" snapshot "$DATASET@pitr-20260101T000000Z"
  "$STUB_BIN/zfs" snapshot "$DATASET@pitr-20260102T000000Z"
  if [[ ${1:-} == dataset ]]; then
    export FAKE_ZFS_MOUNTS=1
    "$STUB_BIN/zfs" create -p -o "mountpoint=$SANDBOX/arch" "$ARCHIVE_DATASET"
    "$STUB_BIN/zfs" snapshot "$ARCHIVE_DATASET@pitr-20260101T000000Z"
    "$STUB_BIN/zfs" snapshot "$ARCHIVE_DATASET@pitr-20260102T000000Z"
  fi
  echo "$USER_NAME:x:2000:2000::$SANDBOX/home:/bin/bash" >"$SANDBOX/.passwd"
  mkdir -p "$SANDBOX/pg_root" "$SANDBOX/cron.d" "$SANDBOX/sbin" "$SANDBOX/arch/arch/2026-01-01"
  echo 4242 >"$SANDBOX/pg_root/postmaster.pid"
  for name in snapshot.cron drill.cron; do echo "# cron" >"$SANDBOX/cron.d/$name"; done
  for name in snapshot retention drill restore; do echo "#!/bin/sh" >"$SANDBOX/sbin/$name"; done
  # shellcheck disable=SC2016 # the installed check's own text, as monitor.sh has it
  printf '#!/bin/sh\n  if [[ -z $only || $only == %s ]]; then\n    check_cluster %s %s /x 1 pg_wal /y pitr- 1 2 3 4 5 6 w 60\n' \
    "$NAME" "$NAME" "$DATASET" >"$SANDBOX/sbin/pitr-check"
  echo "/pg_arch/other 10.0.0.1(rw)" >"$SANDBOX/exports"
  touch -d '-1 hour' "$SANDBOX/arch/arch/2026-01-01/000000010000000000000001"
}

retire_script() {
  rebase_installer "$(script_of retire "$NAME")" PGDATA="$SANDBOX/pg_root" PGHOME="$PGHOME" \
    ARCHIVE_DIR="$SANDBOX/arch" WAL_DIR="$SANDBOX/arch/arch" EXPORTS_FILE="$SANDBOX/exports" \
    SNAPSHOT_CRON="$SANDBOX/cron.d/snapshot.cron" DRILL_CRON="$SANDBOX/cron.d/drill.cron" \
    SNAPSHOT_SCRIPT="$SANDBOX/sbin/snapshot" RETENTION_SCRIPT="$SANDBOX/sbin/retention" \
    DRILL_SCRIPT="$SANDBOX/sbin/drill" RESTORE_SCRIPT="$SANDBOX/sbin/restore" \
    MONITOR_CHECK="$SANDBOX/sbin/pitr-check"
}

# a_primary_world: the retired cluster's primary as 45-apply-on-primary.sh left it (the fake
# server of test_helper): the include turning archiving on with the helper (its path as
# remove_script rebases it), the include line, the pg_hba.conf block, the slot, the helper,
# mount script, unit (enabled) and sudo rule
a_primary_world() {
  local slot
  slot=$(retired_fact "['replication_slot']")
  echo "$(retired_fact "['primary']['os_user']"):x:26:26::/var/lib/pgsql:/bin/bash" >"$SANDBOX/.passwd"
  fake_primary_server
  mkdir -p "$SANDBOX/sbin" "$SANDBOX/units" "$SANDBOX/sudoers.d"
  printf "archive_mode = 'on'\narchive_command = '%s \"%%p\" \"%%f\"'\n" "$SANDBOX/sbin/pitr-archive-wal" >"$PG_ETC/pitr-archive.conf"
  printf "\n# added by pitr-bundle: archiving of %s to the backup host (last: it must win)\ninclude 'pitr-archive.conf'\n" "$NAME" >>"$PG_ETC/postgresql.conf"
  printf '# BEGIN pitr-bundle %s\nhost replication rep 10.0.0.9/32 md5\n# END pitr-bundle %s\n' "$NAME" "$NAME" >>"$PG_ETC/pg_hba.conf"
  "$SANDBOX/pgbin/apply-include" all
  [[ -z $slot ]] || echo physical >"$SANDBOX/.pg/slot"
  echo helper >"$SANDBOX/sbin/pitr-archive-wal"
  echo mount >"$SANDBOX/sbin/pitr-archive-mount"
  echo "[Unit]" >"$SANDBOX/units/pitr-archive-mount.service"
  echo rule >"$SANDBOX/sudoers.d/pitr"
  mkdir -p "$SANDBOX/.systemd"
  : >"$SANDBOX/.systemd/pitr-archive-mount.service.enabled"
}

remove_script() {
  rebase "$(script_of primary-remove "$NAME")" \
    HELPER="$SANDBOX/sbin/pitr-archive-wal" MOUNT_SCRIPT="$SANDBOX/sbin/pitr-archive-mount" \
    UNIT_FILE="$SANDBOX/units/pitr-archive-mount.service" SUDOERS_FILE="$SANDBOX/sudoers.d/pitr" \
    RC_LOCAL="$SANDBOX/rc.local" PROC="$SANDBOX/proc" ARCHIVE_MOUNT="$SANDBOX/pgarch"
}

