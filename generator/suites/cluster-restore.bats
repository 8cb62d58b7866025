#!/usr/bin/env bats
# The restore script (role "restore") against the fake zfs, with a stub pg_ctl and psql.

# What this suite reads of its cluster, and all it sees of the bundle (generator/views.py):
# view roles: restore
# view facts: name user dataset recovery_file snapshots.prefix
# view host: pool.name

load test_helper

make_world() {
  setup_cluster_user
  DATASET=$(cluster_fact "['dataset']")
  PREFIX=$(cluster_fact "['snapshots']['prefix']")
  POOL=$(query "facts['pool']['name']")
  CLUSTER=$(cluster_fact "['name']")
  "$STUB_BIN/zpool" create "$POOL" mirror /dev/a /dev/b
  "$STUB_BIN/zfs" create -p -o mountpoint="$SANDBOX/live" "$DATASET"
  mkdir -p "$SANDBOX/live/pg_root"
  printf "# standby\ninclude 'pitr-bundle.conf'\n" >"$SANDBOX/live/pg_root/postgresql.conf"
  touch "$SANDBOX/live/pg_root/standby.signal" "$SANDBOX/live/pg_root/postmaster.pid"
  fake_pghome "$SANDBOX/pghome"
  # the restored server answers "not in recovery" once started
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  STUB_TARGET=$SANDBOX/pghome/bin stub psql 'echo f'
  RESTORE_SCRIPT=$(rebase "$(cluster_script restore)" PGHOME="$SANDBOX/pghome" \
    RESTORE_ROOT="$SANDBOX/restore" LOG_ROOT="$SANDBOX/log" OPEN_TIMEOUT=5)
  : >"$STUB_LOG"
}

setup_file() {
  world_setup_file make_world
}

setup() {
  world_reset
}

# snapshot_at TIME [-o PROPERTY=VALUE...]
snapshot_at() {
  local stamp
  stamp=$(/bin/date -u -d "$1" +%Y%m%dT%H%M%SZ)
  # the fake zfs stamps creation with `date`: make it the snapshot's own time
  printf '#!/bin/sh\nexec /bin/date -d "%s" "$@"\n' "$1" >"$STUB_BIN/date"
  chmod +x "$STUB_BIN/date"
  "$STUB_BIN/zfs" snapshot "${@:2}" "$DATASET@$PREFIX$stamp"
  rm -f "$STUB_BIN/date"
}

# recovery_log NAME LINES...: a server log of a recovery, for $FAKE_RECOVERY_LOG
recovery_log() {
  local file=$SANDBOX/$1.log
  shift
  local line
  for line in "database system was interrupted while in recovery at log time 2026-11-24 08:00:00 UTC" "$@"; do
    # a line of another level (FATAL:) as it is
    [[ $line =~ ^[A-Z]+:\  ]] || line="LOG:  $line"
    printf '%s\n' "$line"
  done >"$file"
  printf '%s\n' "$file"
}

# server_dies: a pg_ctl whose server logs $FAKE_RECOVERY_LOG and dies (no pid file stays)
server_dies() {
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  STUB_TARGET=$SANDBOX/pghome/bin stub pg_ctl '
log=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do [[ ${args[i]} == -l ]] && log=${args[i+1]}; done
case " $* " in
  *" status "*) exit 3 ;;
  *" start"*) cat "$FAKE_RECOVERY_LOG" >>"$log" ;;
esac'
  STUB_TARGET=$SANDBOX/pghome/bin stub psql 'exit 2'
}

# the lines of a recovery that ran out of WAL at 0/6000A10, its last transaction at 11:59:58.25
SHORT_LINES=('restored log file "000000010000000000000006" from archive' 'redo done at 0/6000A10'
  'last completed transaction was at log time 2026-11-24 11:59:58.25+00')

@test "restore: clones the newest snapshot strictly before the target" {
  snapshot_at "2026-11-24 08:01:00Z"
  snapshot_at "2026-11-24 12:00:00Z"
  snapshot_at "2026-11-24 13:00:00Z"
  : >"$STUB_LOG"
  run -0 "$RESTORE_SCRIPT" --target-time '2026-11-24 12:00:00+00' --name t1 --yes
  calls "^zfs clone -o mountpoint=$SANDBOX/restore/$CLUSTER-t1 .*$DATASET@${PREFIX}20261124T080100Z " | grep -q .
  [[ $output == *"is open"* ]]
}

@test "restore: leaves no temporary file behind (those of its pipelines included)" {
  snapshot_at "2026-11-24 08:01:00Z"
  mkdir "$BATS_TEST_TMPDIR/tmp"
  TMPDIR=$BATS_TEST_TMPDIR/tmp run -0 "$RESTORE_SCRIPT" --target-time '2026-11-24 12:00:00+00' --name t1 --yes
  [ -f "$SANDBOX/restore/$CLUSTER-t1/pg_root/pitr-restore.conf" ]
  [ -z "$(ls -A "$BATS_TEST_TMPDIR/tmp")" ]
}

@test "restore: the clone becomes a recovery target: standby files gone, target with zone, no archiving" {
  snapshot_at "2026-11-24 08:01:00Z"
  run -0 "$RESTORE_SCRIPT" --target-time '2026-11-24 12:00:00+00' --name t1 --port 25999 --yes
  pgdata=$SANDBOX/restore/$CLUSTER-t1/pg_root
  [ ! -e "$pgdata/standby.signal" ]
  # the standby's pid file goes before the restored server starts (and writes its own)
  grep -n "rm -f -- $pgdata/postmaster.pid\|pg_ctl -D $pgdata -W" <<<"$output" | head -n1 | grep -q "rm -f"
  grep -qxF "port = 25999" "$pgdata/pitr-restore.conf"
  grep -qxF "archive_mode = 'off'" "$pgdata/pitr-restore.conf"
  [ "$(grep -cxF "include 'pitr-restore.conf'" "$pgdata/postgresql.conf")" -eq 1 ]
  if [[ $(cluster_fact "['recovery_file']") == standby.signal ]]; then
    [ -e "$pgdata/recovery.signal" ] && [ ! -e "$pgdata/recovery.conf" ]
    grep -qxF "recovery_target_time = '2026-11-24 12:00:00+00'" "$pgdata/pitr-restore.conf"
    grep -qxF "primary_conninfo = ''" "$pgdata/pitr-restore.conf"
  else
    [ ! -e "$pgdata/recovery.signal" ]
    grep -qxF "recovery_target_time = '2026-11-24 12:00:00+00'" "$pgdata/recovery.conf"
    ! grep -q standby_mode "$pgdata/recovery.conf"
  fi
  # the live standby's dataset is untouched
  [ -e "$SANDBOX/live/pg_root/standby.signal" ]
  ! calls "^zfs (set|destroy|rollback) .*$DATASET" | grep -q .
}

@test "restore: a target without a time zone is refused" {
  snapshot_at "2026-11-24 08:01:00Z"
  run -2 "$RESTORE_SCRIPT" --target-time '2026-11-24 12:00:00' --yes
  [[ $output == *"with a zone"* ]]
  ! calls '^zfs clone' | grep -q .
}

@test "restore: a target older than the oldest snapshot is refused with the reason" {
  snapshot_at "2026-11-24 08:01:00Z"
  run -3 "$RESTORE_SCRIPT" --target-time '2026-11-24 08:00:59Z' --yes
  [[ $output == *"older than the oldest snapshot ($DATASET@${PREFIX}20261124T080100Z)"* ]]
  ! calls '^zfs clone' | grep -q .
}

@test "restore: a snapshot taken in the target's second is not 'before' it" {
  snapshot_at "2026-11-24 08:01:00Z"
  snapshot_at "2026-11-24 12:00:00Z"
  run -0 "$RESTORE_SCRIPT" --target-time '2026-11-24 12:00:00Z' --name t2 --yes
  calls "^zfs clone .* $DATASET@${PREFIX}20261124T080100Z " | grep -q .
}

@test "restore: --latest takes a snapshot taken this very second" {
  snapshot_at "2026-11-24 08:01:00Z"
  snapshot_at "$(/bin/date -u '+%F %T')Z"
  run -0 "$RESTORE_SCRIPT" --latest --name t1 --yes
  calls "^zfs clone .* $DATASET@${PREFIX}$(/bin/date -u +%Y%m%d)T" | grep -q .
}

@test "restore: --cleanup stops the restore and destroys only a clone of this cluster" {
  snapshot_at "2026-11-24 08:01:00Z"
  run -0 "$RESTORE_SCRIPT" --latest --name t1 --yes
  "$STUB_BIN/zfs" create -p -o mountpoint=/elsewhere "$POOL/restore/$CLUSTER-foreign"
  run -3 "$RESTORE_SCRIPT" --cleanup foreign --yes
  [[ $output == *"is not a clone of $DATASET"* ]]
  : >"$STUB_LOG"
  run -0 "$RESTORE_SCRIPT" --cleanup t1 --yes
  calls "^zfs destroy $POOL/restore/$CLUSTER-t1\$" | grep -q .
  ! "$STUB_BIN/zfs" list -H -o name "$POOL/restore/$CLUSTER-t1" 2>/dev/null
}

@test "restore: the same name and target again resumes its clone; the name with another target is refused" {
  snapshot_at "2026-11-24 08:01:00Z"
  snapshot_at "2026-11-24 13:00:00Z"
  run -0 "$RESTORE_SCRIPT" --target-time '2026-11-24 12:00:00+00' --name t1 --yes
  : >"$STUB_LOG"
  run -0 "$RESTORE_SCRIPT" --target-time '2026-11-24 12:00:00+00' --name t1 --yes
  [[ $output == *"restore t1 exists for this target"*"resuming it"* ]]
  [ -z "$(calls '^zfs (clone|destroy)')" ]
  # another time, even one whose newest snapshot is the same, and another snapshot: refused
  for target in '2026-11-24 12:30:00+00' '2026-11-24 14:00:00+00'; do
    : >"$STUB_LOG"
    run -3 "$RESTORE_SCRIPT" --target-time "$target" --name t1 --yes
    [[ $output == *"restore t1 exists ($POOL/restore/$CLUSTER-t1) for another target: clean it up first with --cleanup t1"* ]]
    [ -z "$(calls '^zfs (clone|destroy|set)|pg_ctl')" ]
  done
  [ "$("$STUB_BIN/zfs" get -H -o value origin "$POOL/restore/$CLUSTER-t1")" = "$DATASET@${PREFIX}20261124T080100Z" ]
}

@test "restore: --dry-run clones nothing and starts nothing" {
  snapshot_at "2026-11-24 08:01:00Z"
  run -0 "$RESTORE_SCRIPT" --latest --name t1 --dry-run
  [ -z "$(calls '^zfs (clone|create)|pg_ctl')" ]
  [[ $output == *"would run: zfs clone"* ]]
}

@test "restore: hostile restore names and targets are refused before anything runs" {
  snapshot_at "2026-11-24 08:01:00Z"
  run -2 "$RESTORE_SCRIPT" --latest --name 'x;id' --yes
  run -2 "$RESTORE_SCRIPT" --target-lsn "0/1'; select 1" --yes
  run -2 "$RESTORE_SCRIPT" --target-time '$(id)' --yes
  ! calls '^zfs clone' | grep -q .
}

@test "restore: a target time in the future is refused, nothing is cloned" {
  snapshot_at "2026-11-24 08:01:00Z"
  run -3 "$RESTORE_SCRIPT" --target-time "$(/bin/date -u -d '+2 hours' '+%F %T+00')" --yes
  [[ $output == *"is in the future"* ]]
  ! calls '^zfs clone' | grep -q .
}

@test "restore: a target without a zone prints the usage, and no step is reported failed" {
  snapshot_at "2026-11-24 08:01:00Z"
  run -2 "$RESTORE_SCRIPT" --target-time '2026-11-24 12:00:00' --yes
  [[ $output == *"Usage:"* ]]
  [[ $output != *"step '"* ]]
  run -2 "$RESTORE_SCRIPT" --target-lsn 0/3000060 --before '2026-11-24 12:00' --yes
  [[ $output == *"Usage:"* && $output != *"step '"* ]]
}

@test "restore: a server that dies while it replays fails the restore at once, with its log's last lines" {
  snapshot_at "2026-11-24 08:01:00Z"
  FAKE_RECOVERY_LOG=$(recovery_log removed 'FATAL:  requested WAL segment 000000010000000000000007 has already been removed')
  export FAKE_RECOVERY_LOG
  server_dies
  script=$(rebase "$RESTORE_SCRIPT" OPEN_TIMEOUT=600)
  SECONDS=0
  run -1 "$script" --target-time '2026-11-24 12:00:00+00' --name t1 --yes
  ((SECONDS < 30))
  [[ $output == *"FATAL:  requested WAL segment 000000010000000000000007 has already been removed"* ]]
  [[ $output == *"stopped before it opened"* ]]
}

@test "restore: prints its progress while it waits" {
  snapshot_at "2026-11-24 08:01:00Z"
  # not open for 3 seconds, then open; progress every second (the script's is 10)
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  STUB_TARGET=$SANDBOX/pghome/bin stub psql '
[[ -f $SANDBOX/.opened ]] || date +%s >"$SANDBOX/.opened"
case " $* " in
  *pg_is_in_recovery*) (($(date +%s) - $(<"$SANDBOX/.opened") >= 3)) && echo f || echo t ;;
  *pg_last_xact_replay_timestamp*) echo "2026-11-24 11:58:00+00" ;;
esac'
  run -0 "$(rebase "$RESTORE_SCRIPT" OPEN_TIMEOUT=60 PROGRESS_SECONDS=1)" --target-time '2026-11-24 12:00:00+00' --name t1 --yes
  [[ $output == *"waiting for the restored server to open ("*"replayed up to 2026-11-24 11:58:00+00"* ]]
}

@test "restore: paused at the target, the server is promoted at once (13+ hot standby), else left to promote" {
  snapshot_at "2026-11-24 08:01:00Z"
  # in recovery and paused until promoted; pg_promote answers t and opens the server
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  STUB_TARGET=$SANDBOX/pghome/bin stub psql '
case " $* " in
  *pg_is_in_recovery*) [[ -f $SANDBOX/.promoted ]] && echo f || echo t ;;
  *pg_is_wal_replay_paused*) echo t ;;
  *pg_promote*) touch "$SANDBOX/.promoted"; echo t ;;
  *pg_last_wal_replay_lsn*) echo "0/3000060 2026-11-24 11:59:59+00" ;;
esac'
  settings=$SANDBOX/restore/$CLUSTER-t1/pg_root/pitr-restore.conf
  [[ $(cluster_fact "['recovery_file']") == standby.signal ]] || settings=${settings%/*}/recovery.conf
  if grep -qx 'readonly PROMOTE_AT_PAUSE=1' "$RESTORE_SCRIPT"; then
    run -0 "$RESTORE_SCRIPT" --target-time '2026-11-24 12:00:00+00' --name t1 --yes
    grep -qxF "recovery_target_action = 'pause'" "$settings"
    grep -qxF "hot_standby = 'on'" "${settings%/*}/pitr-restore.conf"
    [[ $output == *"recovery paused at the target (replayed to 0/3000060 2026-11-24 11:59:59+00): promote"* ]]
    [[ $output == *"is open"* ]]
    [ -f "$SANDBOX/.promoted" ]
  else
    # an older version (or a standby that is not hot): PostgreSQL promotes at the target
    # itself; nobody promotes a pause, so the stub never opens
    run -1 "$(rebase "$RESTORE_SCRIPT" OPEN_TIMEOUT=2)" --target-time '2026-11-24 12:00:00+00' --name t1 --yes
    ! grep -q "recovery_target_action = 'pause'" "$settings"
    [ ! -f "$SANDBOX/.promoted" ]
  fi
}

@test "restore: the clone's restore_command looks in the last day folder first, then in every one" {
  snapshot_at "2026-11-24 08:01:00Z"
  archive=$SANDBOX/arch
  mkdir -p "$archive"/{2026-11-23,2026-11-24,2026-11-25}
  echo a1 >"$archive/2026-11-23/000000010000000000000001"
  echo a2 >"$archive/2026-11-24/000000010000000000000002"
  echo a3 >"$archive/2026-11-24/000000010000000000000003"
  run -0 "$(rebase "$RESTORE_SCRIPT" ARCHIVE="$archive")" --target-time '2026-11-24 12:00:00+00' --name t1 --yes
  settings=$SANDBOX/restore/$CLUSTER-t1/pg_root/pitr-restore.conf
  [[ $(cluster_fact "['recovery_file']") == standby.signal ]] || settings=${settings%/*}/recovery.conf
  command=$(sed -n "s/^restore_command = '\(.*\)'\$/\1/p" "$settings")
  command=${command//\'\'/\'}
  # fetch FILE: run it as PostgreSQL does, in the data folder, %f, %p and %% replaced
  fetch() {
    local c=${command//%f/$1}
    c=${c//%p/$SANDBOX/got}
    (cd "$SANDBOX/restore/$CLUSTER-t1/pg_root" && sh -c "${c//%%/%}")
  }
  rm -f "$SANDBOX/got"
  fetch 000000010000000000000001
  [ "$(cat "$SANDBOX/got")" = a1 ]
  [ "$(cat "$SANDBOX/restore/$CLUSTER-t1/pg_root/pitr-fetch.day")" = 2026-11-23 ]
  fetch 000000010000000000000002
  [ "$(cat "$SANDBOX/got")" = a2 ]
  [ "$(cat "$SANDBOX/restore/$CLUSTER-t1/pg_root/pitr-fetch.day")" = 2026-11-24 ]
  # a hit in the remembered folder never expands the glob (which would find two files)
  echo other >"$archive/2026-11-25/000000010000000000000003"
  fetch 000000010000000000000003
  [ "$(cat "$SANDBOX/got")" = a3 ]
  # not archived (the end of the archive, a history file that does not exist): exit 1
  rm -f "$SANDBOX/got"
  run -1 fetch 000000010000000000000009
  run -1 fetch 00000002.history
  [ ! -e "$SANDBOX/got" ]
}

@test "restore: --snapshot restores a snapshot as it was taken, without replaying the archive" {
  snapshot_at "2026-11-24 08:01:00Z"
  run -0 "$RESTORE_SCRIPT" --snapshot "${PREFIX}20261124T080100Z" --name s1 --yes
  calls "^zfs clone .* $DATASET@${PREFIX}20261124T080100Z " | grep -q .
  pgdata=$SANDBOX/restore/$CLUSTER-s1/pg_root
  settings=$pgdata/pitr-restore.conf
  [[ $(cluster_fact "['recovery_file']") == standby.signal ]] || settings=$pgdata/recovery.conf
  # no target and no target action (recovery_target_timeline is not a target)
  ! grep -qE "^recovery_target(_time|_lsn|_name|_xid|_action)? *=" "$settings" || false
  grep -qxF "recovery_target_timeline = 'latest'" "$settings"
  # only the WAL the snapshot holds: never the archive
  grep -qxF "restore_command = 'false'" "$settings"
  run -3 "$RESTORE_SCRIPT" --snapshot "${PREFIX}20991124T080100Z" --name s2 --yes
  [[ $output == *"no snapshot"* ]]
}

@test "restore: a target whose WAL the retention deleted is refused, naming the restorable points" {
  # snapshots with their REDO WAL files, as the snapshot script records them
  for spec in "2026-11-10 08:01:00Z 10" "2026-11-17 08:01:00Z 40" "2026-11-24 08:01:00Z 70"; do
    read -r d t redo <<<"$spec"
    printf '#!/bin/sh\nexec /bin/date -d "%s %s" "$@"\n' "$d" "$t" >"$STUB_BIN/date"
    chmod +x "$STUB_BIN/date"
    "$STUB_BIN/zfs" snapshot -o "pitr-bundle:redo-wal=0000000100000000000000$redo" \
      "$DATASET@$PREFIX$(/bin/date -u -d "$d $t" +%Y%m%dT%H%M%SZ)"
    rm -f "$STUB_BIN/date"
  done
  "$STUB_BIN/zfs" set pitr-bundle:wal-kept-from=000000010000000000000040 "$DATASET"
  run -3 "$RESTORE_SCRIPT" --target-time '2026-11-12 12:00:00+00' --yes
  [[ $output == *"no longer holds the WAL a replay from $DATASET@${PREFIX}20261110T080100Z needs"* ]]
  [[ $output == *"any time after 2026-11-17 08:01:00+00"* ]]
  [[ $output == *"--snapshot ${PREFIX}20261110T080100Z"*"taken 2026-11-10 08:01:00+00"* ]]
  [ -z "$(calls '^zfs clone')" ]
  # inside the window: restored
  run -0 "$RESTORE_SCRIPT" --target-time '2026-11-18 12:00:00+00' --name t1 --yes
}

@test "restore: a target reached says so in one line: the target, the last transaction, LSN, timeline" {
  snapshot_at "2026-11-24 08:01:00Z"
  run -0 "$RESTORE_SCRIPT" --target-time '2026-11-24 12:00:00+00' --name t1 --yes
  [[ $output == *"reached the target 2026-11-24 12:00:00+00: stopped at 2026-11-24 11:59:58.25+00, LSN 0/6000A10, timeline 1, last WAL file restored 000000010000000000000006 (PostgreSQL: recovery stopping before commit of transaction 740, time 2026-11-24 12:00:00.5+00)"* ]]
  [[ $output == *"is open"* ]]
  # the server logs in English, to its log folder, the lines this script reads
  for setting in "log_destination = 'stderr'" "log_min_messages = 'warning'" "lc_messages = 'C'"; do
    grep -qxF "$setting" "$SANDBOX/restore/$CLUSTER-t1/pg_root/pitr-restore.conf"
  done
}

@test "restore: the timeline reached is the parent in the history file of the timeline it opened on" {
  snapshot_at "2026-11-24 08:01:00Z"
  wal_dir=$(sed -n "s/^readonly WAL_DIR=//p" "$RESTORE_SCRIPT")
  FAKE_RECOVERY_LOG=$(recovery_log opened3 'restored log file "000000020000000000000006" from archive' \
    'recovery stopping after WAL location (LSN) "0/6000A10"' 'redo done at 0/6000A10' \
    'selected new timeline ID: 3' 'database system is ready to accept connections')
  export FAKE_RECOVERY_LOG
  # the clone's history file, as the server writes it when it opens
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  STUB_TARGET=$SANDBOX/pghome/bin stub psql '
mkdir -p "$SANDBOX/restore/'"$CLUSTER"'-t1/pg_root/'"$wal_dir"'"
printf "1\t0/4000000\tno recovery target specified\n\n2\t0/6000A10\tat lsn 0/6000A10\n" >"$SANDBOX/restore/'"$CLUSTER"'-t1/pg_root/'"$wal_dir"'/00000003.history"
echo f'
  run -0 "$RESTORE_SCRIPT" --target-lsn 0/6000A10 --name t1 --yes
  # no transaction in the replayed WAL: said so
  [[ $output == *"reached the target LSN 0/6000A10: stopped at (no transaction replayed), LSN 0/6000A10, timeline 2, last WAL file restored 000000020000000000000006"* ]]
}

@test "restore: a server that opened short of the target (up to 12) fails the restore, naming both, the clone kept open" {
  snapshot_at "2026-11-24 08:01:00Z"
  FAKE_RECOVERY_LOG=$(recovery_log short "${SHORT_LINES[@]}" 'selected new timeline ID: 2' \
    'archive recovery complete' 'database system is ready to accept connections')
  export FAKE_RECOVERY_LOG
  run -1 "$RESTORE_SCRIPT" --target-time '2026-11-24 12:00:00+00' --name t1 --yes
  [[ $output == *"ERROR: recovery ended before the target 2026-11-24 12:00:00+00 was reached: stopped at 2026-11-24 11:59:58.25+00, LSN 0/6000A10, timeline 1, last WAL file restored 000000010000000000000006; PostgreSQL "*" opened there anyway"* ]]
  [[ $output == *"the clone $POOL/restore/$CLUSTER-t1 is kept for inspection (its server open at that point: psql -h $SANDBOX/restore/$CLUSTER-t1/pg_root -p "*"); remove it with: restore.sh --cleanup t1"* ]]
  [[ $output != *"is open:"* && $output != *"reached the target"* ]]
  # the last ERROR line (what the drill records) names the target and the point
  [[ $(grep ERROR <<<"$output" | tail -n 1) == *"before the target 2026-11-24 12:00:00+00 was reached: stopped at 2026-11-24 11:59:58.25+00"* ]]
  "$STUB_BIN/zfs" list -H -o name "$POOL/restore/$CLUSTER-t1"
  # run again (a resume): the same answer, never a success
  run -1 "$RESTORE_SCRIPT" --target-time '2026-11-24 12:00:00+00' --name t1 --yes
  [[ $output == *"the restored server already runs"*"ERROR: recovery ended before the target"* ]]
}

@test "restore: PostgreSQL 13+'s 'recovery ended before configured recovery target was reached' is named, with the point reached" {
  snapshot_at "2026-11-24 08:01:00Z"
  FAKE_RECOVERY_LOG=$(recovery_log fatal "${SHORT_LINES[@]}" \
    'FATAL:  recovery ended before configured recovery target was reached' 'startup process (PID 9) exited with exit code 1')
  export FAKE_RECOVERY_LOG
  server_dies
  run -1 "$RESTORE_SCRIPT" --target-time '2026-11-24 12:00:00+00' --name t1 --yes
  [[ $(grep ERROR <<<"$output" | tail -n 1) == *"ERROR: recovery ended before the target 2026-11-24 12:00:00+00 was reached (PostgreSQL: \"recovery ended before configured recovery target was reached\"): stopped at 2026-11-24 11:59:58.25+00, LSN 0/6000A10, timeline 1, last WAL file restored 000000010000000000000006"* ]]
  [[ $output == *"is kept for inspection (its server stopped, its log in $SANDBOX/log/$CLUSTER-restore-t1); remove it with: restore.sh --cleanup t1"* ]]
  [[ $output != *"stopped before it opened"* ]]
}

@test "restore: a target before the snapshot's consistent point is named, with the way out" {
  snapshot_at "2026-11-24 08:01:00Z"
  FAKE_RECOVERY_LOG=$(recovery_log early 'recovery stopping before commit of transaction 9, time 2026-11-24 12:00:01+00' \
    'FATAL:  requested recovery stop point is before consistent recovery point')
  export FAKE_RECOVERY_LOG
  server_dies
  run -1 "$RESTORE_SCRIPT" --target-time '2026-11-24 12:00:00+00' --name t1 --yes
  [[ $output == *"ERROR: the target 2026-11-24 12:00:00+00 lies before the point where $DATASET@${PREFIX}20261124T080100Z is consistent (PostgreSQL: \"requested recovery stop point is before consistent recovery point\")"*"--before TIME"* ]]
}

@test "restore: --before picks an older snapshot for a time target too" {
  snapshot_at "2026-11-24 08:01:00Z"
  snapshot_at "2026-11-24 11:00:00Z"
  run -0 "$RESTORE_SCRIPT" --target-time '2026-11-24 12:00:00+00' --before '2026-11-24 10:00:00+00' --name t1 --yes
  calls "^zfs clone .* $DATASET@${PREFIX}20261124T080100Z " | grep -q .
  # a --before after the target changes nothing
  run -0 "$RESTORE_SCRIPT" --target-time '2026-11-24 12:00:00+00' --before '2026-11-24 13:00:00+00' --name t2 --yes
  calls "^zfs clone .* $DATASET@${PREFIX}20261124T110000Z " | grep -q .
}

@test "restore: a log that does not say where recovery stopped fails the restore" {
  snapshot_at "2026-11-24 08:01:00Z"
  FAKE_RECOVERY_LOG=$(recovery_log mute 'database system is ready to accept connections')
  export FAKE_RECOVERY_LOG
  run -1 "$(rebase "$RESTORE_SCRIPT" LOG_SETTLE_SECONDS=1)" --target-time '2026-11-24 12:00:00+00' --name t1 --yes
  [[ $output == *"ERROR: cannot tell where recovery stopped"* ]]
}

@test "restore: --latest says how far the archive went: last transaction, LSN, last WAL file and its archive time" {
  snapshot_at "2026-11-24 08:01:00Z"
  archive=$SANDBOX/arch
  mkdir -p "$archive/2026-11-24"
  touch -d '2026-11-24 11:59:59Z' "$archive/2026-11-24/000000010000000000000006"
  FAKE_RECOVERY_LOG=$(recovery_log latest "${SHORT_LINES[@]}" 'selected new timeline ID: 2' \
    'database system is ready to accept connections')
  export FAKE_RECOVERY_LOG
  run -0 "$(rebase "$RESTORE_SCRIPT" ARCHIVE="$archive")" --latest --name t1 --yes
  [[ $output == *"replayed the archive to its end: stopped at 2026-11-24 11:59:58.25+00, LSN 0/6000A10, timeline 1, last WAL file restored 000000010000000000000006 (archived 2026-11-24 11:59:59 UTC)"* ]]
}

@test "restore: --snapshot says what it opened at" {
  snapshot_at "2026-11-24 08:01:00Z"
  FAKE_RECOVERY_LOG=$(recovery_log own 'redo done at 0/5000100' \
    'last completed transaction was at log time 2026-11-24 08:00:59+00' 'selected new timeline ID: 2' \
    'database system is ready to accept connections')
  export FAKE_RECOVERY_LOG
  run -0 "$RESTORE_SCRIPT" --snapshot "${PREFIX}20261124T080100Z" --name s1 --yes
  [[ $output == *"opened at the snapshot's own consistent point: stopped at 2026-11-24 08:00:59+00, LSN 0/5000100, timeline ?, no WAL file restored from the archive"* ]]
}

@test "restore: --list shows the range in UTC, each snapshot's system, major and timeline, and the restores" {
  # the oldest snapshot's WAL is gone; the second carries no generation properties
  for spec in "2026-11-10 08:01:00Z 10 -o pitr-bundle:system-id=7301 -o pitr-bundle:major=MAJOR -o pitr-bundle:timeline=1" \
    "2026-11-17 08:01:00Z 40" "2026-11-24 08:01:00Z 70 -o pitr-bundle:system-id=7301 -o pitr-bundle:major=MAJOR -o pitr-bundle:timeline=2"; do
    read -r d t redo props <<<"$spec"
    major=$(sed -n "s/^readonly PG_MAJOR=//p" "$RESTORE_SCRIPT" | tr -d "'")
    printf '#!/bin/sh\nexec /bin/date -d "%s %s" "$@"\n' "$d" "$t" >"$STUB_BIN/date"
    chmod +x "$STUB_BIN/date"
    # shellcheck disable=SC2086 # the properties are words on purpose
    "$STUB_BIN/zfs" snapshot ${props//MAJOR/$major} -o "pitr-bundle:redo-wal=0000000100000000000000$redo" \
      "$DATASET@$PREFIX$(/bin/date -u -d "$d $t" +%Y%m%dT%H%M%SZ)"
    rm -f "$STUB_BIN/date"
  done
  "$STUB_BIN/zfs" set pitr-bundle:wal-kept-from=000000010000000000000040 "$DATASET"
  archive=$SANDBOX/arch
  mkdir -p "$archive"/{2026-11-24,2026-11-25}
  touch -d '2026-11-24 10:00:00Z' "$archive/2026-11-24/000000010000000000000070"
  touch -d '2026-11-25 00:00:07Z' "$archive/2026-11-25/000000010000000000000071"
  script=$(rebase "$RESTORE_SCRIPT" ARCHIVE="$archive")
  run -0 "$script" --target-time '2026-11-24 12:00:00+00' --name t1 --yes
  run -0 --separate-stderr "$script" --list
  [[ $output == *"Restorable with --target-time: after 2026-11-17 08:01:00 UTC (snapshot ${PREFIX}20261117T080100Z) to at most 2026-11-25 00:00:07 UTC (the newest archived WAL file, 000000010000000000000071; the last transaction in it: pitr-status)"* ]]
  grep -E "^  2026-11-10 08:01:00 UTC +${PREFIX}20261110T080100Z +7301 +$major +1 +only as taken \(--snapshot\)" <<<"$output"
  grep -E "^  2026-11-17 08:01:00 UTC +${PREFIX}20261117T080100Z +- +- +- +to any later time" <<<"$output"
  grep -E "^  2026-11-24 08:01:00 UTC +${PREFIX}20261124T080100Z +7301 +$major +2 +to any later time" <<<"$output"
  grep -E "^  t1 +running +from ${PREFIX}20261124T080100Z +\(time 2026-11-24 12:00:00\+00 port [0-9]+\)" <<<"$output"
}

@test "restore: --list refuses to look empty: a failing zfs or a missing archive exits 1, saying what failed" {
  snapshot_at "2026-11-24 08:01:00Z"
  run -1 env FAKE_FAIL='zfs list *' "$RESTORE_SCRIPT" --list
  [[ $output == *"ERROR: redo_floors failed: zfs: injected failure"* ]]
  [[ $output != *"step 'start'"* ]]
  run -1 env FAKE_FAIL='zfs get *' "$RESTORE_SCRIPT" --list
  [[ $output == *"failed: zfs: injected failure"* ]]
  run -1 "$(rebase "$RESTORE_SCRIPT" ARCHIVE="$SANDBOX/no-archive")" --list
  [[ $output == *"ERROR: the archive folder $SANDBOX/no-archive is missing"* ]]
  [[ $output == *"${PREFIX}20261124T080100Z"* ]]
}

# generations: snapshots record their system and major (snapshot.sh), the dataset the system of
# the newest base backup (50-basebackup.sh); PostgreSQL 16 binaries, a fixed major
generation_world() {
  RESTORE_SCRIPT=$(rebase "$RESTORE_SCRIPT" PG_MAJOR=16)
  "$STUB_BIN/zfs" set pitr-bundle:system-id=7399999999999999999 "$DATASET"
  snapshot_at "2026-11-24 08:01:00Z" -o pitr-bundle:system-id=7301234567890123456 -o pitr-bundle:major=16
  snapshot_at "2026-11-24 10:01:00Z" -o pitr-bundle:system-id=7399999999999999999 -o pitr-bundle:major=16
  : >"$STUB_LOG"
}

@test "restore: a snapshot of another system than the archive's is refused, naming both" {
  generation_world
  run -3 "$RESTORE_SCRIPT" --target-time '2026-11-24 09:00:00+00' --name g1 --yes
  [[ $output == *"ERROR: $DATASET@${PREFIX}20261124T080100Z is of system 7301234567890123456, the archive holds the WAL of system 7399999999999999999"*"--snapshot ${PREFIX}20261124T080100Z"* ]]
  [ -z "$(changing_calls)" ]
}

@test "restore: a snapshot of an earlier system replays that system's set-apart WAL, not the archive" {
  generation_world
  mkdir -p "$SANDBOX/generations/7301234567890123456/2026-11-24" "$SANDBOX/arch/2026-11-24"
  echo old >"$SANDBOX/generations/7301234567890123456/2026-11-24/000000010000000000000002"
  echo new >"$SANDBOX/arch/2026-11-24/000000010000000000000002"
  # its REDO file lies below the current system's floor of kept WAL, which does not apply to it
  snapshot_at "2026-11-24 08:30:00Z" -o pitr-bundle:system-id=7301234567890123456 -o pitr-bundle:major=16 \
    -o pitr-bundle:redo-wal=000000010000000000000002
  "$STUB_BIN/zfs" set pitr-bundle:wal-kept-from=000000010000000000000009 "$DATASET"
  : >"$STUB_LOG"
  script=$(rebase "$RESTORE_SCRIPT" PG_MAJOR=16 ARCHIVE="$SANDBOX/arch" GENERATIONS="$SANDBOX/generations")
  run -0 "$script" --target-time '2026-11-24 09:00:00+00' --name g1 --yes
  [[ $output == *"is of an earlier system (7301234567890123456; the archive's is now 7399999999999999999): replaying that system's WAL, set apart in $SANDBOX/generations/7301234567890123456"* ]]
  [[ $output != *"no longer holds the WAL"* ]]
  calls "^zfs clone .*$DATASET@${PREFIX}20261124T083000Z " | grep -q .
  settings=$SANDBOX/restore/$CLUSTER-g1/pg_root/pitr-restore.conf
  [[ $(cluster_fact "['recovery_file']") == standby.signal ]] || settings=${settings%/*}/recovery.conf
  command=$(sed -n "s/^restore_command = '\(.*\)'\$/\1/p" "$settings")
  command=${command//\'\'/\'}
  c=${command//%f/000000010000000000000002}
  c=${c//%p/$SANDBOX/got}
  (cd "$SANDBOX/restore/$CLUSTER-g1/pg_root" && sh -c "${c//%%/%}")
  [ "$(cat "$SANDBOX/got")" = old ]
}

@test "restore: a snapshot of the archive's system is restored (the refusal's twin)" {
  generation_world
  run -0 "$RESTORE_SCRIPT" --target-time '2026-11-24 11:00:00+00' --name g1 --yes
  [[ $output != *"WARNING"*"system"* ]]
  calls "^zfs clone .*$DATASET@${PREFIX}20261124T100100Z " | grep -q .
}

@test "restore: --snapshot opens a snapshot of an older system as it was taken" {
  generation_world
  run -0 "$RESTORE_SCRIPT" --snapshot "${PREFIX}20261124T080100Z" --name g1 --yes
  calls "^zfs clone .*$DATASET@${PREFIX}20261124T080100Z " | grep -q .
}

@test "restore: a snapshot of another major than the binaries is refused, naming both" {
  generation_world
  snapshot_at "2026-11-24 10:30:00Z" -o pitr-bundle:system-id=7399999999999999999 -o pitr-bundle:major=9.6
  : >"$STUB_LOG"
  run -3 "$RESTORE_SCRIPT" --snapshot "${PREFIX}20261124T103000Z" --name g1 --yes
  [[ $output == *"ERROR: $DATASET@${PREFIX}20261124T103000Z is of PostgreSQL 9.6, this cluster's binaries are PostgreSQL 16"* ]]
  [ -z "$(changing_calls)" ]
}

@test "restore: a snapshot taken before systems were recorded: a warning, then the restore" {
  generation_world
  snapshot_at "2026-11-24 10:30:00Z"
  run -0 "$RESTORE_SCRIPT" --target-time '2026-11-24 11:00:00+00' --name g1 --yes
  [[ $output == *"WARNING: $DATASET@${PREFIX}20261124T103000Z records no system identifier or major"* ]]
  [[ $output == *"is open"* ]]
}
