#!/usr/bin/env bats
# A retired cluster's scripts (roles "retire" and "primary-remove"), with stubs: the backup
# host's 90-retire.sh and the primary's 45-remove-from-primary.sh. Bundles without a retired
# cluster skip them. The real run is tests/test_retire_zfs_fuse.py.

load test_helper
load retire_world

setup() {
  setup_retired
}

@test "retire: stops the standby, removes cron files, installed scripts and monitor lines, keeps dataset and archive" {
  a_retired_world
  script=$(retire_script)
  run -0 "$script"
  [[ $output == *"step: stop the standby"* ]]
  calls | grep -F "runuser -u $USER_NAME -- $PGHOME/bin/pg_ctl stop -D $SANDBOX/pg_root -m fast -w"
  [ ! -e "$SANDBOX/pg_root/postmaster.pid" ]
  [ -z "$(ls -A "$SANDBOX/cron.d")" ]
  [ -z "$(ls "$SANDBOX/sbin" | grep -v pitr-check)" ]
  # the installed check is now the bundle's, which does not check this cluster
  ! grep -E "check_cluster '?$NAME'? " "$SANDBOX/sbin/pitr-check" || false
  grep -q "check_pool" "$SANDBOX/sbin/pitr-check"
  "$STUB_BIN/zfs" list -H -o name "$DATASET"
  [ "$("$STUB_BIN/zfs" list -H -t snapshot -o name -d 1 -s creation "$DATASET" | wc -l)" -eq 2 ]
  [ -f "$SANDBOX/arch/arch/2026-01-01/000000010000000000000001" ]
  [[ $output == *"kept: dataset $DATASET (2 snapshot(s))"* ]]
  [[ $output == *"done: cluster $NAME retired"* ]]
  [ -z "$(calls '^zfs destroy')" ]
  # a re-run changes nothing
  : >"$STUB_LOG"
  run -0 "$script"
  [[ $output == *"cluster $NAME: already retired"* ]]
  [ -z "$(calls '^(runuser .* stop|rm |install |zfs destroy)')" ]
}

@test "retire: --dry-run changes nothing" {
  a_retired_world
  script=$(retire_script)
  before=$(world_state)
  run -0 "$script" --dry-run --destroy-data
  [[ $output == *"dry-run: would run: zfs destroy -R $DATASET"* ]]
  [[ $output == *"dry-run: would run: runuser -u $USER_NAME"* ]]
  [ "$(world_state)" = "$before" ]
}

@test "retire: refuses while WAL still arrives (exit 3, nothing changed) and names the primary-side removal; --force goes on" {
  a_retired_world
  touch "$SANDBOX/arch/arch/2026-01-01/000000010000000000000002"
  script=$(retire_script)
  before=$(world_state)
  run -3 "$script"
  [[ $output == *"WAL still arrives"* ]]
  [[ $output == *"clusters/$NAME/primary/45-remove-from-primary.sh"* ]]
  [ "$(world_state)" = "$before" ]
  run -0 "$script" --force
  [ ! -e "$SANDBOX/pg_root/postmaster.pid" ]
}

@test "retire: refuses a dataset mounted elsewhere (exit 3, nothing changed)" {
  a_retired_world
  "$STUB_BIN/zfs" set mountpoint=/elsewhere "$DATASET"
  script=$(retire_script)
  before=$(world_state)
  run -3 "$script"
  [[ $output == *"mounted at /elsewhere"* ]]
  [ "$(world_state)" = "$before" ]
}

@test "retire: --destroy-data needs --yes; with it the dataset (snapshots, children, clones) and the archive folder (a host never migrated) go" {
  a_retired_world
  "$STUB_BIN/zfs" create -p -o mountpoint=/x "$DATASET/child"
  script=$(retire_script)
  before=$(world_state)
  run -4 "$script" --destroy-data </dev/null
  [ "$(world_state)" = "$before" ]
  run -0 "$script" --destroy-data --yes
  run ! "$STUB_BIN/zfs" list -H -o name "$DATASET"
  run ! "$STUB_BIN/zfs" list -H -o name "$DATASET/child"
  [ -z "$("$STUB_BIN/zfs" list -H -t snapshot -o name -d 1 -s creation "$DATASET")" ]
  [ ! -e "$SANDBOX/arch" ]
  : >"$STUB_LOG"
  run -0 "$script" --destroy-data --yes
  [[ $output == *"dataset $DATASET: already destroyed"* ]]
  [[ $output == *"cluster $NAME: already retired"* ]]
}

@test "retire: --destroy-data refuses a restore clone (unless --force) and a clone with a running server (always)" {
  a_retired_world
  "$STUB_BIN/zfs" create -p -o mountpoint=/x "$(query "facts['pool']['name']")/restore"
  "$STUB_BIN/zfs" clone -o "mountpoint=$SANDBOX/clone" "$DATASET@pitr-20260102T000000Z" "$(query "facts['pool']['name']")/restore/$NAME-t1"
  script=$(retire_script)
  before=$(world_state)
  run -3 "$script" --destroy-data --yes
  [[ $output == *"restore clone"*"$NAME-t1"*"--force"* ]]
  [ "$(world_state)" = "$before" ]
  sleep 300 &
  echo "$!" >"$SANDBOX/clone/pg_root/postmaster.pid"
  run -3 "$script" --destroy-data --yes --force
  kill "$!"
  [[ $output == *"still runs a server"* ]]
  rm "$SANDBOX/clone/pg_root/postmaster.pid"
  run -0 "$script" --destroy-data --yes --force
  [ -z "$("$STUB_BIN/zfs" list -H -t filesystem,volume -o name,origin | grep "$DATASET@")" ]
}

@test "retire: refuses --destroy-data while the archive is still exported" {
  a_retired_world
  echo "$SANDBOX/arch 10.0.0.2(rw,no_root_squash,sync)" >>"$SANDBOX/exports"
  script=$(retire_script)
  run -3 "$script" --destroy-data --yes
  [[ $output == *"still exports $SANDBOX/arch"*"40-nfs-exports.sh"* ]]
}

# --- the archive a dataset of its own (docs/archive-datasets.md) ------------------------------

@test "retire: the archive's dataset is kept with its snapshots, and named, without --destroy-data" {
  a_retired_world dataset
  script=$(retire_script)
  run -0 "$script"
  [[ $output == *"kept: WAL archive $SANDBOX/arch, dataset $ARCHIVE_DATASET (2 snapshot(s))"* ]]
  [ "$("$STUB_BIN/zfs" list -H -t snapshot -o name -d 1 -s creation "$ARCHIVE_DATASET" | wc -l)" -eq 2 ]
  [ -f "$SANDBOX/arch/arch/2026-01-01/000000010000000000000001" ]
  [ -z "$(calls '^zfs (destroy|unmount)')" ]
}

@test "retire: --destroy-data --dry-run lists the archive's dataset and changes nothing" {
  a_retired_world dataset
  script=$(retire_script)
  before=$(world_state)
  run -0 "$script" --dry-run --destroy-data
  [[ $output == *"dry-run: would run: zfs destroy -R $DATASET"* ]]
  [[ $output == *"dry-run: would run: zfs unmount $ARCHIVE_DATASET"*"dry-run: would run: zfs destroy -R $ARCHIVE_DATASET"* ]]
  [[ $output != *"would run: rm -rf"* ]]
  [ "$(world_state)" = "$before" ]
}

@test "retire: --destroy-data needs --yes; with it the archive's dataset and its snapshots go, unmounted first" {
  a_retired_world dataset
  script=$(retire_script)
  before=$(world_state)
  run -4 "$script" --destroy-data </dev/null
  [[ $output == *"the WAL archive $SANDBOX/arch, dataset $ARCHIVE_DATASET and its snapshots"* ]]
  [ "$(world_state)" = "$before" ]
  run -0 "$script" --destroy-data --yes
  run ! "$STUB_BIN/zfs" list -H -o name "$ARCHIVE_DATASET"
  [ -z "$("$STUB_BIN/zfs" list -H -t snapshot -o name -d 1 -s creation "$ARCHIVE_DATASET")" ]
  [ ! -e "$SANDBOX/arch" ]
  [ "$(calls "^zfs (unmount|destroy -R) $ARCHIVE_DATASET\$")" = "zfs unmount $ARCHIVE_DATASET
zfs destroy -R $ARCHIVE_DATASET" ]
  [ -z "$(calls '^rm -rf')" ]
  : >"$STUB_LOG"
  run -0 "$script" --destroy-data --yes
  [[ $output == *"archive $SANDBOX/arch: already removed"* ]]
  [[ $output == *"cluster $NAME: already retired"* ]]
}

@test "retire: --destroy-data refuses an archive dataset mounted elsewhere, and a clone of its snapshot (unless --force)" {
  a_retired_world dataset
  "$STUB_BIN/zfs" set "mountpoint=$SANDBOX/elsewhere" "$ARCHIVE_DATASET"
  script=$(retire_script)
  before=$(world_state)
  run -3 "$script" --destroy-data --yes
  [[ $output == *"archive dataset $ARCHIVE_DATASET is mounted at $SANDBOX/elsewhere, not $SANDBOX/arch"* ]]
  [ "$(world_state)" = "$before" ]
  "$STUB_BIN/zfs" set "mountpoint=$SANDBOX/arch" "$ARCHIVE_DATASET"
  "$STUB_BIN/zfs" clone -o mountpoint=/x "$ARCHIVE_DATASET@pitr-20260102T000000Z" "$POOL/by-hand"
  before=$(world_state)
  run -3 "$script" --destroy-data --yes
  [[ $output == *"clone $POOL/by-hand of a snapshot of $ARCHIVE_DATASET exists"*"--force"* ]]
  [ "$(world_state)" = "$before" ]
  run -0 "$script" --destroy-data --yes --force
  run ! "$STUB_BIN/zfs" list -H -o name "$POOL/by-hand"
  run ! "$STUB_BIN/zfs" list -H -o name "$ARCHIVE_DATASET"
}

# --- the primary side --------------------------------------------------------------------------

@test "primary-remove: takes out the include and pg_hba lines, restarts, drops the slot, removes helper, mount and sudo rule" {
  fake_systemctl
  a_primary_world
  # archiving with the helper before
  grep -q pitr-archive-wal "$SANDBOX/.pg/cur:archive_command"
  script=$(remove_script)
  run -4 "$script" --restart </dev/null
  grep -qxF "include 'pitr-archive.conf'" "$PG_ETC/postgresql.conf"
  run -0 "$script" --restart --yes
  ! grep -q "pitr-archive.conf" "$PG_ETC/postgresql.conf" || false
  ! grep -q "added by pitr-bundle" "$PG_ETC/postgresql.conf" || false
  [ ! -e "$PG_ETC/pitr-archive.conf" ]
  ! grep -q "pitr-bundle $NAME" "$PG_ETC/pg_hba.conf" || false
  grep -qx 'local all all peer' "$PG_ETC/pg_hba.conf"
  [ -z "$(cat "$SANDBOX/.pg/cur:archive_command")" ]
  [ "$(cat "$SANDBOX/.pg/cur:archive_mode")" = off ]
  [ ! -e "$SANDBOX/.pg/slot" ]
  if [[ -n $(retired_fact "['replication_slot']") ]]; then
    calls | grep -q "pg_drop_replication_slot"
  fi
  [ ! -e "$SANDBOX/sbin/pitr-archive-wal" ]
  [ ! -e "$SANDBOX/sbin/pitr-archive-mount" ]
  [ ! -e "$SANDBOX/units/pitr-archive-mount.service" ]
  [ ! -e "$SANDBOX/sudoers.d/pitr" ]
  [ ! -e "$SANDBOX/.systemd/pitr-archive-mount.service.enabled" ]
  # a re-run changes nothing
  : >"$STUB_LOG"
  run -0 "$script" --restart --yes
  [ -z "$(calls '^(rm |install |cp |systemctl (disable|restart)|umount)|pg_drop|pg_ctl')" ]
}

@test "primary-remove: without --reload/--restart the helper stays while the server still archives with it" {
  fake_systemctl
  a_primary_world
  script=$(remove_script)
  run -0 "$script" --yes
  [[ $output == *"still archives with"* ]]
  [ -e "$SANDBOX/sbin/pitr-archive-wal" ]
  ! grep -q "pitr-archive.conf" "$PG_ETC/postgresql.conf" || false
  [[ $output == *"RESTART"* ]]
  # a reload alone: archive_command goes, archive_mode stays on until a restart, and the
  # include stays as the mark of it
  run -0 "$script" --yes --reload
  [ ! -e "$SANDBOX/sbin/pitr-archive-wal" ]
  [ "$(cat "$SANDBOX/.pg/cur:archive_mode")" = on ]
  [ -e "$PG_ETC/pitr-archive.conf" ]
  run -0 "$script" --yes --restart
  [ "$(cat "$SANDBOX/.pg/cur:archive_mode")" = off ]
  [ ! -e "$PG_ETC/pitr-archive.conf" ]
}

@test "primary-remove: --dry-run changes nothing" {
  fake_systemctl
  a_primary_world
  script=$(remove_script)
  before=$(world_state)
  run -0 "$script" --dry-run --restart
  [[ $output == *"dry-run"* ]]
  [ "$(world_state)" = "$before" ]
}

@test "primary-remove: --no-postgres (a passive HA node) removes helper, mount and sudo rule, asks no server" {
  fake_systemctl
  a_primary_world
  script=$(remove_script)
  conf=$(cat "$PG_ETC/postgresql.conf")
  run -0 "$script" --no-postgres --yes
  [ "$(cat "$PG_ETC/postgresql.conf")" = "$conf" ]
  [ -e "$PG_ETC/pitr-archive.conf" ]
  [ ! -e "$SANDBOX/sbin/pitr-archive-wal" ]
  [ ! -e "$SANDBOX/sbin/pitr-archive-mount" ]
  [ ! -e "$SANDBOX/sudoers.d/pitr" ]
  [ -z "$(calls '^psql')" ]
}
