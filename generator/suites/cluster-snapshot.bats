#!/usr/bin/env bats
# The snapshot script (role "snapshot") against the fake zfs, with a fake clock.

# What this suite reads of its cluster, and all it sees of the bundle (generator/views.py):
# view roles: snapshot
# view facts: name dataset archive_dataset port paths.pgdata paths.pghome snapshots
# view host: pool.name

load test_helper

make_world() {
  setup_stubs
  DATASET=$(cluster_fact "['dataset']")
  ARCHIVE_DATASET=$(cluster_fact "['archive_dataset']")
  ARCHIVE_KEEP=$(cluster_fact "['snapshots']['archive_keep']")
  PREFIX=$(cluster_fact "['snapshots']['prefix']")
  POOL=$(query "facts['pool']['name']")
  "$STUB_BIN/zpool" create "$POOL" mirror /dev/a /dev/b
  "$STUB_BIN/zfs" create -p -o mountpoint=/x "$DATASET"
  : >"$STUB_LOG"
  stub flock
  stub logger
  set_clock "2026-01-01 08:01:00"
  # PostgreSQL 16, a fixed major: the suite does not read the cluster's
  fake_standby "$PITR_WORLD/pghome" "$SANDBOX/pgdata" 16
  SNAPSHOT_SCRIPT=$(rebase "$(cluster_script snapshot)" LOCK_FILE="$SANDBOX/snapshot.lock" \
    PGHOME="$PITR_WORLD/pghome" PGDATA="$FAKE_PGDATA")
}

setup_file() {
  world_setup_file make_world
}

setup() {
  world_reset
}

snapshots() {
  "$STUB_BIN/zfs" list -H -t snapshot -o name -d 1 -s creation "$DATASET"
}

@test "snapshot: takes DATASET@PREFIX<UTC time> and logs to syslog too" {
  run -0 "$SNAPSHOT_SCRIPT"
  [ "$(snapshots)" = "$DATASET@${PREFIX}20260101T080100Z" ]
  calls "^logger -t pitr-snapshot-$(cluster_fact "['name']") -- took " | grep -q .
}

# bats test_tags=deep
@test "snapshot: over a simulated year of runs the kept set is exactly the policy's" {
  # a run every 30 hours for 400 days: every period's buckets are hit, some days twice or not
  for ((run_no = 0; run_no < 320; run_no++)); do
    run -0 "$SNAPSHOT_SCRIPT"
    advance 108000
  done
  run "$PYTHON" -S - "$(cluster_fact "['snapshots']['keep']" | tr "'" '"')" <<'PY'
import datetime, json, sys
keep = json.loads(sys.argv[1])
start = datetime.datetime(2026, 1, 1, 8, 1)
taken = [start + datetime.timedelta(hours=30 * n) for n in range(320)]
keys = {"hourly": lambda t: t.strftime("%Y%m%d%H"), "daily": lambda t: t.strftime("%Y%m%d"),
        "weekly": lambda t: (t.date() - datetime.date(1969, 12, 29)).days // 7,
        "monthly": lambda t: t.strftime("%Y%m"), "yearly": lambda t: t.strftime("%Y")}
kept = {taken[-1]}
for period, count in keep.items():
    seen = []
    for t in reversed(taken):
        k = keys[period](t)
        if k not in seen and len(seen) < count:
            seen.append(k)
            kept.add(t)
        elif k not in seen:
            seen.append(k)
for t in sorted(kept):
    print(t.strftime("%Y%m%dT%H%M%SZ"))
PY
  [ "$status" -eq 0 ]
  expected=$output
  actual=$(snapshots | sed "s|^$DATASET@$PREFIX||")
  [ "$actual" = "$expected" ]
  [ "$(snapshots | tail -n1)" = "$DATASET@${PREFIX}$(/bin/date -u -d "@$(($(cat "$SANDBOX/.now") - 108000))" +%Y%m%dT%H%M%SZ)" ]
}

@test "snapshot: pruning keeps a snapshot with a clone, one with a hold, and other tools' ones" {
  # old snapshots of its own, a minute apart within one hour: whatever the spec's keep counts,
  # each hour, day, week, month and year keeps at most its newest, so the run prunes the rest
  base=$(/bin/date -u -d "2025-01-01 00:00:00" +%s)
  for ((i = 0; i < 20; i++)); do
    "$STUB_BIN/zfs" snapshot "$DATASET@${PREFIX}$(/bin/date -u -d "@$((base + i * 60))" +%Y%m%dT%H%M%SZ)"
  done
  first=$(snapshots | head -n1)
  second=$(snapshots | sed -n 2p)
  "$STUB_BIN/zfs" create -p -o mountpoint="$SANDBOX/r" "$POOL/restore"
  "$STUB_BIN/zfs" clone -o mountpoint="$SANDBOX/r/c" "$first" "$POOL/restore/c"
  "$STUB_BIN/zfs" hold keep "$second"
  "$STUB_BIN/zfs" snapshot "$DATASET@manual-before-upgrade"
  run -0 "$SNAPSHOT_SCRIPT"
  [ "$(calls '^zfs destroy' | wc -l)" -gt 0 ]
  snapshots | grep -qxF "$first"
  snapshots | grep -qxF "$second"
  snapshots | grep -qxF "$DATASET@manual-before-upgrade"
  echo "$output" | grep -qF "keep $first (has a clone)"
  echo "$output" | grep -qF "keep $second (held)"
}

# bats test_tags=deep
@test "snapshot: keeps a snapshot that has a clone, and one with a hold" {
  run -0 "$SNAPSHOT_SCRIPT"
  first=$(snapshots | head -n1)
  "$STUB_BIN/zfs" create -p -o mountpoint="$SANDBOX/r" "$POOL/restore"
  "$STUB_BIN/zfs" clone -o mountpoint="$SANDBOX/r/c" "$first" "$POOL/restore/c"
  advance 3600
  run -0 "$SNAPSHOT_SCRIPT"
  second=$(snapshots | tail -n1)
  "$STUB_BIN/zfs" hold keep "$second"
  for ((day = 0; day < 60; day++)); do advance 86400; run -0 "$SNAPSHOT_SCRIPT"; done
  snapshots | grep -qxF "$first"
  snapshots | grep -qxF "$second"
  echo "$output" | grep -qF "keep $first (has a clone)"
  echo "$output" | grep -qF "keep $second (held)"
}

# bats test_tags=deep
@test "snapshot: never prunes another tool's snapshots" {
  "$STUB_BIN/zfs" snapshot "$DATASET@manual-before-upgrade"
  for ((day = 0; day < 40; day++)); do run -0 "$SNAPSHOT_SCRIPT"; advance 86400; done
  snapshots | grep -qxF "$DATASET@manual-before-upgrade"
}

# bats test_tags=deep
@test "snapshot: zfs calls per run do not grow with the number of snapshots (OpenZFS)" {
  export FAKE_OPENZFS=1
  count_zfs_calls() {
    : >"$STUB_LOG"
    run -0 "$SNAPSHOT_SCRIPT"
    calls '^zfs ' | wc -l
  }
  # each batch a second apart within one hour: whatever the keep counts, both runs prune
  # (each period keeps at most its newest), so both make the same calls
  local base
  base=$(/bin/date -u -d "2019-01-01 00:00:00" +%s)
  for ((i = 0; i < 5; i++)); do
    "$STUB_BIN/zfs" snapshot "$DATASET@${PREFIX}$(/bin/date -u -d "@$((base + i))" +%Y%m%dT%H%M%SZ)"
  done
  few=$(count_zfs_calls)
  advance 86400
  base=$(/bin/date -u -d "2020-01-01 00:00:00" +%s)
  for ((i = 0; i < 300; i++)); do
    "$STUB_BIN/zfs" snapshot "$DATASET@${PREFIX}$(/bin/date -u -d "@$((base + i))" +%Y%m%dT%H%M%SZ)"
  done
  advance 86400
  many=$(count_zfs_calls)
  [ "$few" -eq "$many" ]
  [ "$(calls '^zfs destroy -d ' | wc -l)" -eq 1 ]
}

@test "snapshot: older ZFS without comma lists gets one destroy per snapshot" {
  unset FAKE_OPENZFS
  for ((i = 0; i < 5; i++)); do
    "$STUB_BIN/zfs" snapshot "$DATASET@${PREFIX}$(/bin/date -u -d "2020-01-01 + $i hours" +%Y%m%dT%H%M%SZ)"
  done
  run -0 "$SNAPSHOT_SCRIPT"
  ! calls '^zfs destroy -d .*,' | grep -q .
}

@test "snapshot: two overlapping runs do not both run" {
  stub flock 'exit 1'
  run -3 "$SNAPSHOT_SCRIPT"
  [[ $output == *"another run holds"* ]]
  [ -z "$(snapshots)" ]
}

@test "snapshot: a failing zfs stops the run with the step named" {
  FAKE_FAIL='zfs snapshot*' run -1 "$SNAPSHOT_SCRIPT"
  [[ $output == *"step 'snapshot' failed"* ]]
  FAKE_FAIL='zfs destroy*' run -0 "$SNAPSHOT_SCRIPT" --no-prune
}

@test "snapshot: a failing pre-snapshot hook stops the snapshot" {
  script=$(rebase "$SNAPSHOT_SCRIPT" PRE_HOOK='exit 7')
  run -1 "$script"
  [[ $output == *"pre-snapshot hook failed (exit 7): no snapshot taken"* ]]
  [ -z "$(snapshots)" ]
}

@test "snapshot: the pre-snapshot hook runs with the cluster's PGHOME, PATH, PGDATA and PGPORT" {
  script=$(rebase "$SNAPSHOT_SCRIPT" PRE_HOOK='echo "$PGHOME|${PATH%%:*}|$PGDATA|$PGHOST|$PGPORT" >"$SANDBOX/hook.env"')
  run -0 "$script" --no-prune
  pghome=$(cluster_fact "['paths']['pghome']")
  pgdata=$(cluster_fact "['paths']['pgdata']")
  [ "$(cat "$SANDBOX/hook.env")" = "$pghome|$pghome/bin|$pgdata|$pgdata|$(cluster_fact "['port']")" ]
}

@test "snapshot: --dry-run lists what it would take and prune, and changes nothing" {
  # a minute apart within one hour: at most the newest is kept, whatever the keep counts
  base=$(/bin/date -u -d "2020-01-01 00:00:00" +%s)
  for ((i = 0; i < 20; i++)); do
    "$STUB_BIN/zfs" snapshot "$DATASET@${PREFIX}$(/bin/date -u -d "@$((base + i * 60))" +%Y%m%dT%H%M%SZ)"
  done
  before=$(snapshots)
  : >"$STUB_LOG"
  run -0 "$SNAPSHOT_SCRIPT" --dry-run
  [ "$(snapshots)" = "$before" ]
  [[ $output == *"would run: zfs snapshot"* ]]
  echo "$output" | grep -q "prune $DATASET@"
  ! calls '^zfs (snapshot|destroy)' | grep -q .
}

redo_of_newest() {
  "$STUB_BIN/zfs" get -H -o value pitr-bundle:redo-wal "$(snapshots | tail -n1)"
}

@test "snapshot: records the REDO WAL file pg_controldata reports on the snapshot (10+ output)" {
  run -0 "$SNAPSHOT_SCRIPT"
  [ "$(redo_of_newest)" = 0000000100000002000000A3 ]
  [[ $output == *"replay from it starts in WAL file 0000000100000002000000A3"* ]]
  # read before the snapshot, never after it
  calls '^(pg_controldata|zfs snapshot)' | head -n1 | grep -q '^pg_controldata'
}

@test "snapshot: derives the REDO WAL file where pg_controldata has no such line (9.0, 64 MB segments, timeline 3)" {
  write_controldata 1F/C4000020 3 67108864
  run -0 "$SNAPSHOT_SCRIPT"
  # 0xC4000020 / 64 MB = segment 0x31 of log 0x1F
  [ "$(redo_of_newest)" = 000000030000001F00000031 ]
}

prop_of_newest() {
  "$STUB_BIN/zfs" get -H -o value "$1" "$(snapshots | tail -n1)"
}

@test "snapshot: records the system identifier, major and timeline on the snapshot" {
  run -0 "$SNAPSHOT_SCRIPT" --no-prune
  [ "$(prop_of_newest pitr-bundle:system-id)" = 7301234567890123456 ]
  [ "$(prop_of_newest pitr-bundle:major)" = 16 ]
  [ "$(prop_of_newest pitr-bundle:timeline)" = 1 ]
  # at creation, in the same zfs call as the REDO WAL file
  calls '^zfs snapshot ' | grep -q -- '-o pitr-bundle:system-id=7301234567890123456 -o pitr-bundle:major=16 -o pitr-bundle:timeline=1 -o pitr-bundle:redo-wal=0000000100000002000000A3 '
  [[ $output == *"(system 7301234567890123456, PostgreSQL 16, timeline 1; replay from"* ]]
}

@test "snapshot: the timeline is the minimum recovery point's when replay followed a newer one" {
  write_controldata 2/A3000028 2 16777216 "" "in archive recovery" 3
  run -0 "$SNAPSHOT_SCRIPT" --no-prune
  [ "$(prop_of_newest pitr-bundle:timeline)" = 3 ]
}

@test "snapshot: a standby that is not running is not snapshotted" {
  rm "$FAKE_PGDATA/postmaster.pid"
  run -3 "$SNAPSHOT_SCRIPT"
  [[ $output == *"ERROR: no snapshot of $FAKE_PGDATA: the standby is not running"*"Start it"* ]]
  calls '^logger .*ERROR: no snapshot of .*not running' | grep -q .
  [ -z "$(snapshots)" ]
}

@test "snapshot: a standby promoted by mistake is not snapshotted" {
  write_controldata 2/A3000028 2 16777216 "" "in production"
  run -3 "$SNAPSHOT_SCRIPT"
  [[ $output == *"not in recovery (cluster state: in production): promoted by mistake?"*"new base backup"* ]]
  [ -z "$(snapshots)" ]
}

@test "snapshot: a PGDATA whose base backup is unfinished is not snapshotted" {
  : >"$FAKE_PGDATA/.pitr-bundle-basebackup-incomplete"
  run -3 "$SNAPSHOT_SCRIPT"
  [[ $output == *"its base backup is unfinished"*"Run the base backup script again"* ]]
  [ -z "$(snapshots)" ]
}

@test "snapshot: a PGDATA without a readable PG_VERSION stops the run, no snapshot" {
  rm "$FAKE_PGDATA/PG_VERSION"
  run -1 "$SNAPSHOT_SCRIPT"
  [[ $output == *"PG_VERSION gives no major"* ]]
  [ -z "$(snapshots)" ]
}

@test "snapshot: --dry-run refuses a stopped standby too" {
  rm "$FAKE_PGDATA/postmaster.pid"
  run -3 "$SNAPSHOT_SCRIPT" --dry-run
  [[ $output == *"the standby is not running"* ]]
}

@test "snapshot: where pg_controldata cannot read pg_control, the standby's signal file tells; nothing unknown is recorded" {
  rm "$FAKE_PGDATA/global/pg_control"
  touch "$FAKE_PGDATA/standby.signal"
  run -0 "$SNAPSHOT_SCRIPT" --no-prune
  [[ $output == *"WARNING: pg_controldata of "*"its signal file tells"*"records no system identifier, timeline or REDO point"* ]]
  [[ $output == *"(system unknown, PostgreSQL 16, timeline unknown)"* ]]
  [ "$(prop_of_newest pitr-bundle:major)" = 16 ]
  [ "$(prop_of_newest pitr-bundle:system-id)" = - ]
  [ "$(prop_of_newest pitr-bundle:timeline)" = - ]
  [ "$(redo_of_newest)" = - ]
}

@test "snapshot: where pg_controldata cannot read pg_control, a standby without its signal file (promoted) is refused" {
  rm "$FAKE_PGDATA/global/pg_control"
  touch "$FAKE_PGDATA/recovery.done"
  run -3 "$SNAPSHOT_SCRIPT"
  [[ $output == *"not in recovery (cluster state: no standby.signal or recovery.conf): promoted by mistake?"* ]]
  [ -z "$(snapshots)" ]
  touch "$FAKE_PGDATA/recovery.conf"
  run -0 "$SNAPSHOT_SCRIPT"
}

@test "snapshot: a pg_control caught mid-write (CRC) is read again" {
  printf '1\n' >"$BATS_TEST_TMPDIR/reads"
  STUB_TARGET=$PITR_WORLD/pghome/bin stub pg_controldata "
n=\$(cat $BATS_TEST_TMPDIR/reads); echo \$((n + 1)) >$BATS_TEST_TMPDIR/reads
if ((n < 3)); then echo 'WARNING: Calculated CRC checksum does not match value stored in file.'; fi
cat \"\$1/.fake-controldata\""
  run -0 "$SNAPSHOT_SCRIPT" --no-prune
  [ "$(redo_of_newest)" = 0000000100000002000000A3 ]
  [ "$(cat "$BATS_TEST_TMPDIR/reads")" = 4 ]
}

@test "snapshot: a REDO point pg_controldata does not give: the snapshot has the other properties, with a warning" {
  write_controldata garbage 1 16777216
  run -0 "$SNAPSHOT_SCRIPT"
  [ "$(redo_of_newest)" = - ]
  [ "$(prop_of_newest pitr-bundle:system-id)" = 7301234567890123456 ]
  [[ $output == *"WARNING: pg_controldata could not tell the REDO point"* ]]
}

# ---- the archive dataset, snapshotted with the cluster's (docs/archive-datasets.md) ---------

archive_snapshots() {
  "$STUB_BIN/zfs" list -H -t snapshot -o name -d 1 -s creation "$ARCHIVE_DATASET"
}

# with_archive_dataset: the cluster's archive made a dataset (20-datasets.sh)
with_archive_dataset() {
  "$STUB_BIN/zfs" create -p -o mountpoint=/y "$ARCHIVE_DATASET"
  : >"$STUB_LOG"
}

@test "snapshot: the cluster's dataset and its archive's in ONE zfs snapshot call, same name and properties (OpenZFS)" {
  with_archive_dataset
  FAKE_OPENZFS=1 run -0 "$SNAPSHOT_SCRIPT"
  name=${PREFIX}20260101T080100Z
  [ "$(calls '^zfs snapshot' | wc -l)" -eq 1 ]
  calls '^zfs snapshot ' | grep -qE " $DATASET@$name $ARCHIVE_DATASET@$name\$"
  [ "$(snapshots)" = "$DATASET@$name" ]
  [ "$(archive_snapshots)" = "$ARCHIVE_DATASET@$name" ]
  [ "$("$STUB_BIN/zfs" get -H -o value pitr-bundle:major "$ARCHIVE_DATASET@$name")" = 16 ]
  [[ $output == *"and its archive's, $ARCHIVE_DATASET@$name, in the same call"* ]]
  # the cluster's snapshot is the first one the log says it took
  [[ ${output#*took } == "$DATASET@$name "* ]]
}

@test "snapshot: a zfs that takes one snapshot a call (zfs-fuse): the cluster's first, then the archive's" {
  with_archive_dataset
  run -0 "$SNAPSHOT_SCRIPT"
  name=${PREFIX}20260101T080100Z
  [ "$(calls '^zfs snapshot' | sed 's/.* //')" = "$DATASET@$name
$ARCHIVE_DATASET@$name" ]
  [ "$(archive_snapshots)" = "$ARCHIVE_DATASET@$name" ]
  # the log says how: not "in the same call"
  [[ $output == *"and its archive's, $ARCHIVE_DATASET@$name, right after it (this zfs takes one snapshot a call)"* ]]
}

@test "snapshot: an archive that is no dataset yet: only the cluster's snapshot, with a warning naming the migration" {
  run -0 "$SNAPSHOT_SCRIPT"
  [ "$(calls '^zfs snapshot' | wc -l)" -eq 1 ]
  [[ $output == *"WARNING: the WAL archive is no dataset yet ($ARCHIVE_DATASET not found)"*"--migrate-archive"* ]]
  [ "$(snapshots)" = "$DATASET@${PREFIX}20260101T080100Z" ]
}

@test "snapshot: --dry-run names both snapshots and changes nothing" {
  with_archive_dataset
  FAKE_OPENZFS=1 run -0 "$SNAPSHOT_SCRIPT" --dry-run
  [ -z "$(calls "^zfs (snapshot|destroy)")" ]
  [[ $output == *"would run: zfs snapshot "*" $DATASET@${PREFIX}20260101T080100Z $ARCHIVE_DATASET@${PREFIX}20260101T080100Z"* ]]
  [ -z "$(archive_snapshots)" ]
}

@test "snapshot: only the newest archive snapshots are kept (and held or cloned ones), whatever the cluster's keep counts" {
  with_archive_dataset
  for ((day = 0; day < 12; day++)); do
    FAKE_OPENZFS=1 run -0 "$SNAPSHOT_SCRIPT"
    if ((day == 2)); then
      held=$(archive_snapshots | tail -n1)
      "$STUB_BIN/zfs" hold pitr-replica "$held"
    fi
    advance 86400
  done
  [ "$(archive_snapshots | grep -vxF "$held" | wc -l)" -eq "$ARCHIVE_KEEP" ]
  archive_snapshots | grep -qxF "$held"
  # the newest ARCHIVE_KEEP of the cluster's snapshots, by name
  [ "$(archive_snapshots | grep -vxF "$held" | sed 's/.*@//')" = "$(snapshots | tail -n "$ARCHIVE_KEEP" | sed 's/.*@//')" ]
  # the cluster's own pruning is its keep counts': more than the archive's
  [ "$(snapshots | wc -l)" -gt "$ARCHIVE_KEEP" ]
  [[ $output == *"keep $held (held)"* ]]
  # other tools' snapshots of the archive are never pruned
  "$STUB_BIN/zfs" snapshot "$ARCHIVE_DATASET@manual"
  FAKE_OPENZFS=1 run -0 "$SNAPSHOT_SCRIPT"
  archive_snapshots | grep -qxF "$ARCHIVE_DATASET@manual"
}

@test "snapshot: a run stopped between the cluster's and the archive's snapshot (one a call) takes the archive's when run again" {
  with_archive_dataset
  FAKE_FAIL="zfs snapshot * $ARCHIVE_DATASET@*" run -1 "$SNAPSHOT_SCRIPT"
  [ -z "$(archive_snapshots)" ]
  run -0 "$SNAPSHOT_SCRIPT"
  [ "$(archive_snapshots)" = "$ARCHIVE_DATASET@${PREFIX}20260101T080100Z" ]
  [ "$(snapshots)" = "$DATASET@${PREFIX}20260101T080100Z" ]
}
