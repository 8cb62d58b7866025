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
  STUB_TARGET=$SANDBOX/pghome/bin stub psql 'echo 42'
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

# restore_stub: restore.sh as a stub: the clone appears in the fake ZFS with the server's log
# saying it reached the target; FAKE_RESTORE_FAIL=MESSAGE makes it fail; FAKE_SERVER_DIES=1
# starts a "server" that dies while restore.sh waits
restore_stub() {
  cat >"$SANDBOX/restore.sh" <<STUB
#!/usr/bin/env bash
set -e
printf 'restore.sh %s\n' "\$*" >>"\$STUB_LOG"
case " \$* " in
  *" --cleanup "*) zfs destroy $CLONE; rm -rf "$SANDBOX/clone"; exit 0 ;;
  *" --dry-run "*) echo "restore.sh: dry-run: would run: zfs clone"; exit 0 ;;
esac
zfs create -p -o origin=$DATASET@${PREFIX}20261124T080100Z $CLONE
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
