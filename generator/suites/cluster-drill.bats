#!/usr/bin/env bats
# The restore drill (role "drill"), with restore.sh as a stub that makes the clone in the fake
# ZFS (its installer: cluster-drill-cron.bats). The drill against real ZFS and PostgreSQL:
# tests/test_drill_zfs_pg.py.

# What this suite reads of its cluster, and all it sees of the bundle (generator/views.py):
# view roles: drill
# view facts: name user dataset drill snapshots.prefix
# view host: pool.name

load test_helper

make_world() {
  setup_cluster_user
  POOL=$(query "facts['pool']['name']")
  CLUSTER=$(cluster_fact "['name']")
  DATASET=$(cluster_fact "['dataset']")
  PREFIX=$(cluster_fact "['snapshots']['prefix']")
  DRILL=$(cluster_script drill)
  [[ -n $DRILL ]] || { PITR_WORLD_SKIP="drills are off for $CLUSTER"; return 0; }
  CLONE=$(sed -n "s/^readonly CLONE=//p" "$DRILL" | tr -d "'")
  STATE=$SANDBOX/state/drill-$CLUSTER.state
  fake_pghome "$SANDBOX/pghome"
  psql_stub
  FAKE_CMD=zpool bash "$SUITES_DIR/fake_zfs.bash" create "$POOL" mirror /dev/a /dev/b
  "$STUB_BIN/zfs" create -p -o mountpoint="$SANDBOX/live" "$DATASET"
  "$STUB_BIN/zfs" snapshot "$DATASET@${PREFIX}20261124T080100Z"
  restore_stub
  DRILL_SCRIPT=$(rebase "$DRILL" RESTORE_SCRIPT="$SANDBOX/restore.sh" CLONE_PGDATA="$SANDBOX/clone/pg_root" \
    CLONE_LOGS="$SANDBOX/clone-logs" STATE_DIR="$SANDBOX/state" LOCK_FILE="$PITR_WORLD/drill.lock" \
    PGHOME="$SANDBOX/pghome")
  stub logger
  : >"$STUB_LOG"
}

setup_file() {
  world_setup_file make_world
}

setup() {
  world_reset
}

# psql_stub: the drill server's psql: the sanity query answers 42; data checksums are
# $FAKE_CHECKSUMS (default off), the amcheck extension is there with FAKE_AMCHECK_EXT=1,
# bt_index_check fails with FAKE_BT_FAIL=MESSAGE
psql_stub() {
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  STUB_TARGET=$SANDBOX/pghome/bin stub psql '
case ${*: -1} in
  "show data_checksums") echo "${FAKE_CHECKSUMS:-off}" ;;
  *"from pg_database"*) printf "app\npostgres\n" ;;
  "create extension"*)
    [[ ${FAKE_AMCHECK_EXT:-0} == 1 ]] ||
      { echo "ERROR:  could not open extension control file \"/x/share/extension/amcheck.control\": No such file or directory" >&2; exit 1; } ;;
  *bt_index_check*) [[ -z ${FAKE_BT_FAIL:-} ]] || { echo "ERROR:  $FAKE_BT_FAIL" >&2; exit 1; }; echo 3 ;;
  *) echo 42 ;;
esac'
}

# restore_stub: restore.sh as a stub: the clone of the newest of our snapshots named before
# the target appears in the fake ZFS with the server's log saying it reached the target;
# FAKE_RESTORE_FAIL=MESSAGE makes it fail; FAKE_SERVER_DIES=1 starts a "server" that dies
# while restore.sh waits; FAKE_ORIGIN=SNAPSHOT clones that one instead
restore_stub() {
  cat >"$SANDBOX/restore.sh" <<STUB
#!/usr/bin/env bash
set -e
printf 'restore.sh %s\n' "\$*" >>"\$STUB_LOG"
case " \$* " in
  *" --cleanup "*) zfs destroy $CLONE; rm -rf "$SANDBOX/clone"; exit 0 ;;
  *" --dry-run "*) echo "restore.sh: dry-run: would run: zfs clone"; exit 0 ;;
esac
target=\$(/bin/date -u -d "\$(sed -n 's/.*--target-time \\(.*+00\\) --name.*/\\1/p' <<<"\$*")" +%Y%m%dT%H%M%SZ)
origin=\${FAKE_ORIGIN:-\$(zfs list -H -t snapshot -o name -d 1 -s creation $DATASET |
  awk -v limit="$DATASET@$PREFIX\$target" '\$1 < limit { o = \$1 } END { print o }')}
zfs create -p -o origin=\$origin $CLONE
mkdir -p "$SANDBOX/clone/pg_root" "$SANDBOX/clone-logs"
if [[ -n \${FAKE_RESTORE_FAIL:-} ]]; then echo "restore.sh: ERROR: \$FAKE_RESTORE_FAIL" >&2; exit 1; fi
if [[ -n \${FAKE_SERVER_DIES:-} ]]; then
  echo "restore.sh: step: wait until it is open" >&2
  echo 'FATAL:  could not find WAL 000000010000000000000007' >"$SANDBOX/clone-logs/postgresql.log"
  echo 999999 >"$SANDBOX/clone/pg_root/postmaster.pid"
  sleep 30
  exit 1
fi
echo 'LOG:  recovery stopping before commit of transaction 9, time 2026-11-24 12:00:01+00' >"$SANDBOX/clone-logs/postgresql.log"
if [[ -z \${FAKE_NO_REDO:-} ]]; then
  # 256 MiB of WAL replayed in 4 s
  printf 'LOG:  redo starts at 0/2000028\nLOG:  redo done at 0/12000028\n' >>"$SANDBOX/clone-logs/postgresql.log"
  echo "restore.sh: replay reached the target after 4.000s" >&2
  echo "restore.sh: open after 4.500s" >&2
fi
echo "restore.sh: restore drill is open" >&2
STUB
  chmod +x "$SANDBOX/restore.sh"
}

state() {
  sed -n "s/^$1=//p" "$STATE"
}

@test "drill: restores under the name drill, checks, records ok, removes its clone" {
  run -0 "$DRILL_SCRIPT"
  calls '^restore.sh --target-time [0-9-]+ [0-9:]+\+00 --name drill --port [0-9]+ --yes$' | grep -q .
  calls '^restore.sh --cleanup drill --yes$' | grep -q .
  ! "$STUB_BIN/zfs" list -H -o name "$CLONE" || false
  [ "$(state result)" = ok ]
  [ "$(state snapshot)" = "$DATASET@${PREFIX}20261124T080100Z" ]
  [ "$(state sanity)" = 42 ]
  [ "$(state last_ok_epoch)" -gt 0 ]
  [ -z "$(state error)" ]
  grep -q ' ok snapshot=' "$SANDBOX/state/drill-$CLUSTER.log"
}

@test "drill: records the replay it saw: WAL bytes, seconds to the target, rate, restore.sh's time" {
  run -0 "$DRILL_SCRIPT"
  [ "$(state replay_bytes)" = 268435456 ]
  [ "$(state replay_seconds)" = 4.000 ]
  [ "$(state replay_bytes_per_second)" = 67108864 ]
  [[ $(state restore_seconds) =~ ^[0-9]+\.[0-9]{3}$ ]]
  [[ $output == *"replayed 256 MB of WAL in 4.000s (64 MB/s)"* ]]
}

@test "drill: without the server's redo lines the drill passes and records no replay rate" {
  FAKE_NO_REDO=1 run -0 "$DRILL_SCRIPT"
  [ "$(state result)" = ok ]
  [ -z "$(state replay_bytes_per_second)" ]
  [[ $output == *"no replay rate measured"* ]]
}

@test "drill: the target lies the spec's lag before the start" {
  lag=$(cluster_fact "['drill']['target_lag_minutes']")
  run -0 "$DRILL_SCRIPT"
  target=$(state target)
  when=$(state when_epoch)
  [ "$(/bin/date -u -d "$target" +%s)" -eq $((when - lag * 60)) ]
}

@test "drill: a restore that fails is recorded as failed with its error, and the clone goes" {
  export FAKE_RESTORE_FAIL="a WAL file is missing"
  run -1 "$DRILL_SCRIPT"
  [ "$(state result)" = failed ]
  [[ $(state error) == *"a WAL file is missing"* ]]
  ! "$STUB_BIN/zfs" list -H -o name "$CLONE" || false
  [ -z "$(state last_ok_epoch)" ]
}

@test "drill: a failure keeps the time of the last success" {
  run -0 "$DRILL_SCRIPT"
  ok=$(state last_ok_epoch)
  FAKE_RESTORE_FAIL=broken run -1 "$DRILL_SCRIPT"
  [ "$(state result)" = failed ]
  [ "$(state last_ok_epoch)" = "$ok" ]
}

@test "drill: a server that dies while restore.sh waits fails the drill at once, with its last words" {
  export FAKE_SERVER_DIES=1
  SECONDS=0
  run -1 "$DRILL_SCRIPT"
  ((SECONDS < 20))
  [[ $(state error) == *"the restored server stopped: FATAL:  could not find WAL 000000010000000000000007"* ]]
  ! "$STUB_BIN/zfs" list -H -o name "$CLONE"
}

@test "drill: recovery that never reached the target fails the drill" {
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  sed -i 's/recovery stopping before commit/redo done at 0\/3000060; last completed transaction/' "$SANDBOX/restore.sh"
  run -1 "$DRILL_SCRIPT"
  [[ $(state error) == *"recovery ended before the target"* ]]
}

@test "drill: a failing sanity query fails the drill" {
  STUB_TARGET=$SANDBOX/pghome/bin stub psql 'echo "ERROR: relation missing" >&2; exit 1'
  run -1 "$DRILL_SCRIPT"
  [[ $(state error) == *"the sanity query failed: ERROR: relation missing"* ]]
}

@test "drill: a clone left by an earlier drill is removed first" {
  "$STUB_BIN/zfs" create -p -o origin="$DATASET@${PREFIX}20261124T080100Z" "$CLONE"
  run -0 "$DRILL_SCRIPT"
  [ "$(calls '^restore.sh --cleanup drill' | wc -l)" -eq 2 ]
  [ "$(state result)" = ok ]
}

@test "drill: --dry-run asks restore.sh for a dry run and records nothing" {
  run -0 "$DRILL_SCRIPT" --dry-run
  calls '^restore.sh .*--dry-run' | grep -q .
  [ ! -e "$STATE" ]
}

@test "drill: the port is the first free one from the spec's" {
  [ "$(sed -n 's/^readonly FIRST_PORT=//p' "$DRILL")" = "$(cluster_fact "['drill']['port']")" ]
  # then a port of this test's own, one the kernel picks (the shapes' suites run side by side,
  # their clusters' drill ports are neighbours; and a number written here would be one the
  # suites name, see generator/shapes.py)
  "$PYTHON" -S -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
import os; os.rename(sys.argv[1] + ".tmp", sys.argv[1]); time.sleep(20)' "$BATS_TEST_TMPDIR/port" &
  listener=$!
  for _ in $(seq 50); do [[ -s $BATS_TEST_TMPDIR/port ]] && break; sleep 0.1; done
  port=$(<"$BATS_TEST_TMPDIR/port")
  DRILL_SCRIPT=$(rebase "$DRILL_SCRIPT" FIRST_PORT="$port")
  run -0 "$DRILL_SCRIPT"
  kill "$listener"
  [ "$(state port)" = $((port + 1)) ]
}

# snapshots_ago SECONDS...: our snapshots named that long before now, in the order given
snapshots_ago() {
  local age now
  now=$(/bin/date -u +%s)
  for age in "$@"; do
    "$STUB_BIN/zfs" snapshot "$DATASET@$PREFIX$(/bin/date -u -d "@$((now - age))" +%Y%m%dT%H%M%SZ)"
  done
}

# five snapshots: one before the PITR window's start, three inside it, one 2 h old (SNAPS,
# oldest first)
window_of_five() {
  local window day=86400
  window=$(sed -n 's/^readonly PITR_WINDOW_DAYS=//p' "$DRILL")
  snapshots_ago $(((window + 3) * day)) $((window * day * 3 / 4)) $((window * day / 2)) $((window * day / 4)) 7200
  mapfile -t SNAPS < <("$STUB_BIN/zfs" list -H -t snapshot -o name -d 1 -s creation "$DATASET" | tail -n 5)
}

@test "drill: the runs take turns: the newest, the oldest of the PITR window, one between, and record why" {
  window_of_five
  run -0 "$DRILL_SCRIPT"
  [ "$(state runs)" = 1 ] && [ "$(state pick)" = newest ]
  [ "$(state snapshot)" = "${SNAPS[4]}" ]
  [[ $(state pick_reason) == "run 1 takes the newest (the newest snapshot before $(state target))" ]]
  run -0 "$DRILL_SCRIPT"
  [ "$(state runs)" = 2 ] && [ "$(state pick)" = oldest ]
  # the newest taken at or before the window's start: the WAL retention keeps WAL from it on
  [ "$(state snapshot)" = "${SNAPS[0]}" ]
  # replayed up to the next snapshot's time: the WAL only this snapshot restores
  [ "$(/bin/date -u -d "$(state target)" +%Y%m%dT%H%M%SZ)" = "${SNAPS[1]#*@"$PREFIX"}" ]
  [[ $(state pick_reason) == "run 2 takes the oldest (1 of 5 in the "*"-day window, replayed to $(state target))" ]]
  grep -q " ok snapshot=${SNAPS[0]} pick=oldest " "$SANDBOX/state/drill-$CLUSTER.log"
  run -0 "$DRILL_SCRIPT"
  [ "$(state pick)" = between ]
  between=$(state snapshot)
  [[ $between == "${SNAPS[1]}" || $between == "${SNAPS[2]}" || $between == "${SNAPS[3]}" ]]
  run -0 "$DRILL_SCRIPT"
  [ "$(state runs)" = 4 ] && [ "$(state pick)" = newest ]
  # the same run number drills the same snapshot again
  sed -i 's/^runs=.*/runs=2/' "$STATE"
  run -0 "$DRILL_SCRIPT"
  [ "$(state runs)" = 3 ] && [ "$(state snapshot)" = "$between" ]
}

@test "drill: after a rebuilt primary (a new generation) only the current system's snapshots take turns" {
  local now day=86400 window age system=111
  now=$(/bin/date -u +%s)
  window=$(sed -n 's/^readonly PITR_WINDOW_DAYS=//p' "$DRILL")
  # (the world's own snapshot records no system: not drilled once the dataset records one)
  # two of the old system 111 (one before the window's start), then three of the new one 222
  for age in $(((window + 3) * day)) $((window * day * 3 / 4)) $((window * day / 2)) $((window * day / 4)) 7200; do
    "$STUB_BIN/zfs" snapshot -o "pitr-bundle:system-id=$system" \
      "$DATASET@$PREFIX$(/bin/date -u -d "@$((now - age))" +%Y%m%dT%H%M%SZ)"
    [[ $age != $((window * day * 3 / 4)) ]] || system=222
  done
  "$STUB_BIN/zfs" set pitr-bundle:system-id=222 "$DATASET"
  mapfile -t SNAPS < <("$STUB_BIN/zfs" list -H -t snapshot -o name -d 1 -s creation "$DATASET" | tail -n 5)
  mkdir -p "${STATE%/*}"
  printf 'runs=1\n' >"$STATE"
  run -0 "$DRILL_SCRIPT" --pick oldest
  # the old system's snapshots replay from no archive (restore.sh refuses them): not drilled
  [ "$(state snapshot)" = "${SNAPS[2]}" ]
  [[ $(state pick_reason) == *"(1 of 3 in the "* ]]
}

@test "drill: the between turn visits every snapshot between the oldest and the newest over the runs" {
  window_of_five
  seen=""
  mkdir -p "${STATE%/*}"
  for runs in 2 5 8 11 14 17 20 23 26; do
    printf 'runs=%s\n' "$runs" >"$STATE"
    run -0 "$DRILL_SCRIPT"
    [ "$(state pick)" = between ]
    seen+=" $(state snapshot)"
  done
  for i in 1 2 3; do [[ $seen == *" ${SNAPS[i]}"* ]]; done
  [[ $seen != *" ${SNAPS[0]}"* && $seen != *" ${SNAPS[4]}"* ]]
}

@test "drill: with too few snapshots in the window, the turn falls back to the newest and says so" {
  mkdir -p "${STATE%/*}"
  printf 'runs=1\n' >"$STATE"
  run -0 "$DRILL_SCRIPT"
  [ "$(state pick)" = newest ]
  [[ $(state pick_reason) == "run 2 takes the oldest; only 1 snapshot(s) in the "*"-day window: the newest (the newest snapshot before"* ]]
}

@test "drill: an older snapshot the lag does not reach is not drilled: the newest, said why" {
  "$STUB_BIN/zfs" destroy -d "$DATASET@${PREFIX}20261124T080100Z"
  snapshots_ago 600 300
  run "$DRILL_SCRIPT" --pick oldest
  [ "$(state pick)" = newest ]
  [[ $(state pick_reason) == *"is younger than the drill's lag: the newest"* ]]
}

@test "drill: --pick chooses the snapshot; with --target-time (or a bad name) it is a usage error" {
  window_of_five
  run -0 "$DRILL_SCRIPT" --pick oldest
  [ "$(state pick)" = oldest ] && [ "$(state snapshot)" = "${SNAPS[0]}" ]
  [[ $(state pick_reason) == "--pick oldest "* ]]
  run -2 "$DRILL_SCRIPT" --pick oldest --target-time '2026-11-24 12:00:00+00'
  run -2 "$DRILL_SCRIPT" --pick all
}

@test "drill: --target-time drills what restore.sh picks, recorded as such" {
  run -0 "$DRILL_SCRIPT" --target-time '2026-11-24 12:00:00+00'
  [ "$(state pick)" = target ]
  [ "$(state snapshot)" = "$DATASET@${PREFIX}20261124T080100Z" ]
}

@test "drill: restore.sh restoring another snapshot than the one picked fails the drill" {
  window_of_five
  FAKE_ORIGIN=${SNAPS[3]} run -1 "$DRILL_SCRIPT" --pick oldest
  [[ $(state error) == "restore.sh restored ${SNAPS[3]}, not the snapshot the drill picked (${SNAPS[0]})" ]]
  ! "$STUB_BIN/zfs" list -H -o name "$CLONE" || false
}

@test "drill: pg_amcheck checks every database of the open clone, recorded" {
  STUB_TARGET=$SANDBOX/pghome/bin stub pg_amcheck
  run -0 "$(rebase "$DRILL_SCRIPT" AMCHECK=pg_amcheck)"
  calls "^pg_amcheck -h $SANDBOX/clone/pg_root -p [0-9]+ -U postgres --all --install-missing$" | grep -q .
  [ "$(state amcheck)" = "ok: pg_amcheck --all (heap, TOAST and B-tree indexes of every database)" ]
}

@test "drill: corruption pg_amcheck finds fails the drill, naming the relation and block; so does its error" {
  # shellcheck disable=SC2016 # the quoted text is the stub's own code
  STUB_TARGET=$SANDBOX/pghome/bin stub pg_amcheck 'printf "%s\n" "heap table \"postgres.public.t\", block 0, offset 3:" \
    "    line pointer redirection to item at offset 21840 exceeds maximum offset 4"; exit 2'
  run -1 "$(rebase "$DRILL_SCRIPT" AMCHECK=pg_amcheck)"
  [ "$(state result)" = failed ]
  [[ $(state error) == 'pg_amcheck found corruption in the clone: heap table "postgres.public.t", block 0, offset 3:'* ]]
  ! "$STUB_BIN/zfs" list -H -o name "$CLONE" || false
  STUB_TARGET=$SANDBOX/pghome/bin stub pg_amcheck 'echo "pg_amcheck: error: extension amcheck is not available" >&2; exit 1'
  run -1 "$(rebase "$DRILL_SCRIPT" AMCHECK=pg_amcheck)"
  [ "$(state error)" = 'pg_amcheck could not check the clone (exit 1): pg_amcheck: error: extension amcheck is not available' ]
}

@test "drill: without pg_amcheck, the amcheck extension's bt_index_check runs in every database" {
  for mode in pg_amcheck extension; do
    FAKE_AMCHECK_EXT=1 run -0 "$(rebase "$DRILL_SCRIPT" AMCHECK=$mode)"
    [ "$(state amcheck)" = "ok: bt_index_check on 6 B-tree indexes (no pg_amcheck: heap not checked)" ]
    [ "$(calls '^psql .* -d (app|postgres) -c create extension if not exists amcheck$' | wc -l)" -ge 2 ]
  done
}

@test "drill: an index bt_index_check finds broken fails the drill, naming it and its database" {
  FAKE_AMCHECK_EXT=1 FAKE_BT_FAIL='item order invariant violated for index "t_pkey"' \
    run -1 "$(rebase "$DRILL_SCRIPT" AMCHECK=extension)"
  [[ $(state error) == *'bt_index_check found the clone broken in database app: ERROR:  item order invariant violated for index "t_pkey"'* ]]
}

@test "drill: no amcheck at all is recorded, not a failure" {
  run -0 "$(rebase "$DRILL_SCRIPT" AMCHECK=pg_amcheck)"
  [[ $(state amcheck) == "not available: no pg_amcheck in $SANDBOX/pghome/bin and no amcheck extension installed" ]]
  run -0 "$(rebase "$DRILL_SCRIPT" AMCHECK=none)"
  [[ $(state amcheck) == "not available: PostgreSQL "*" has no amcheck (10+)" ]]
  [ "$(state result)" = ok ]
}

@test "drill: data checksums on: the stopped clone is read by pg_checksums, recorded" {
  STUB_TARGET=$SANDBOX/pghome/bin stub pg_checksums 'echo "Checksum operation completed"; echo "Blocks scanned: 12"'
  FAKE_CHECKSUMS=on run -0 "$(rebase "$DRILL_SCRIPT" DATA_CHECKSUMS=1 PG_CHECKSUMS=1)"
  [ "$(state checksums)" = "ok: pg_checksums --check, 12 blocks" ]
  # stopped first: pg_checksums reads only a cluster shut down cleanly
  [ "$(calls "^pg_(ctl|checksums) " | sed -n '$p')" = "pg_checksums --check -D $SANDBOX/clone/pg_root" ]
  calls "^pg_ctl -D $SANDBOX/clone/pg_root -m fast -w stop$" | grep -q .
}

@test "drill: a page pg_checksums finds broken fails the drill, naming the file and block" {
  # shellcheck disable=SC2016 # the quoted text is the stub's own code
  STUB_TARGET=$SANDBOX/pghome/bin stub pg_checksums 'echo "pg_checksums: error: checksum verification failed in file \"$3/base/5/16384\", block 0: calculated checksum 9D3 but block contains 1F2" >&2
echo "Bad checksums:  1"; exit 1'
  FAKE_CHECKSUMS=on run -1 "$(rebase "$DRILL_SCRIPT" DATA_CHECKSUMS=1 PG_CHECKSUMS=1)"
  [[ $(state error) == "pg_checksums --check failed on the clone (exit 1): pg_checksums: error: checksum verification failed in file \"$SANDBOX/clone/pg_root/base/5/16384\", block 0:"* ]]
  ! "$STUB_BIN/zfs" list -H -o name "$CLONE" || false
}

@test "drill: checksums off, too old a version or no pg_checksums: recorded what was not checked" {
  run -0 "$(rebase "$DRILL_SCRIPT" DATA_CHECKSUMS=1 PG_CHECKSUMS=1)"
  [ "$(state checksums)" = "off: the cluster has no data checksums (initdb --data-checksums)" ]
  FAKE_CHECKSUMS=on run -0 "$(rebase "$DRILL_SCRIPT" DATA_CHECKSUMS=1 PG_CHECKSUMS=1)"
  [ "$(state checksums)" = "on, not checked: no pg_checksums in $SANDBOX/pghome/bin" ]
  FAKE_CHECKSUMS=on run -0 "$(rebase "$DRILL_SCRIPT" DATA_CHECKSUMS=1 PG_CHECKSUMS=0)"
  [ "$(state checksums)" = "on, not checked: pg_checksums comes with PostgreSQL 12" ]
  run -0 "$(rebase "$DRILL_SCRIPT" DATA_CHECKSUMS=0 PG_CHECKSUMS=0)"
  [[ $(state checksums) == "not available: PostgreSQL "*" has no data checksums (9.3+)" ]]
  [ -z "$(calls '^pg_ctl .* stop')" ]
}

@test "drill: a clone that cannot say whether it has amcheck or data checksums fails the drill" {
  # shellcheck disable=SC2016 # the quoted text is the stub's own code
  STUB_TARGET=$SANDBOX/pghome/bin stub psql '[[ ${*: -1} != "create extension"* ]] || { echo "FATAL:  terminating connection" >&2; exit 2; }; echo 42'
  run -1 "$(rebase "$DRILL_SCRIPT" AMCHECK=extension)"
  [ "$(state error)" = "could not ask the clone for the amcheck extension: FATAL:  terminating connection" ]
  # shellcheck disable=SC2016 # the quoted text is the stub's own code
  STUB_TARGET=$SANDBOX/pghome/bin stub psql '[[ ${*: -1} != "show data_checksums" ]] || { echo "FATAL:  gone" >&2; exit 2; }; echo 42'
  run -1 "$(rebase "$DRILL_SCRIPT" AMCHECK=none DATA_CHECKSUMS=1)"
  [ "$(state error)" = "could not ask the clone for data_checksums: FATAL:  gone" ]
}

@test "drill: a gap in the archive fails the drill, recorded with the missing file; a continuous archive passes" {
  mkdir -p "$SANDBOX/arch/2026-12-01"
  truncate -s 16M "$SANDBOX/arch/2026-12-01/00000001000000000000000"{1,3}
  local drill
  drill=$(rebase "$DRILL_SCRIPT" CONTINUITY_ARCHIVE="$SANDBOX/arch")
  run -1 "$drill"
  [[ $output == *"archive gap: 000000010000000000000002 missing; restorable up to 000000010000000000000001"* ]]
  [ "$(state result)" = failed ]
  [[ $(state error) == "archive gap: 000000010000000000000002 missing; "* ]]
  ! "$STUB_BIN/zfs" list -H -o name "$CLONE" || false
  truncate -s 16M "$SANDBOX/arch/2026-12-01/000000010000000000000002"
  run -0 "$drill"
  [[ $output == *"archive continuous from 000000010000000000000001 to 000000010000000000000003 (3 segments of 16 MB)"* ]]
  [ "$(state result)" = ok ]
}
