#!/usr/bin/env bats
# The WAL retention script (role "wal-retention") against the fake zfs, a fake clock and a
# fake pg_controldata; and with the snapshot script over a simulated span of runs.

# What this suite reads of its cluster, and all it sees of the bundle (generator/views.py):
# view roles: wal-retention snapshot
# view facts: name dataset archive snapshots.prefix
# view host: pool.name

load test_helper

make_world() {
  setup_stubs
  DATASET=$(cluster_fact "['dataset']")
  PREFIX=$(cluster_fact "['snapshots']['prefix']")
  POOL=$(query "facts['pool']['name']")
  WINDOW=$(cluster_fact "['archive']['pitr_window_days']")
  "$STUB_BIN/zpool" create "$POOL" mirror /dev/a /dev/b
  "$STUB_BIN/zfs" create -p -o mountpoint="$SANDBOX/live" "$DATASET"
  ARCHIVE=$SANDBOX/arch
  mkdir -p "$ARCHIVE"
  stub flock
  stub logger
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub runuser 'while (($#)) && [[ $1 != -- ]]; do shift; done; shift; exec "$@"'
  set_clock "2026-03-01 08:01:00"
  RETENTION=$(rebase "$(cluster_script wal-retention)" LOCK_FILE="$SANDBOX/snapshot.lock" \
    ARCHIVE="$ARCHIVE" GENERATIONS="$SANDBOX/generations")
  : >"$STUB_LOG"
}

setup_file() {
  world_setup_file make_world
}

setup() {
  world_reset
}

now_stamp() {
  /bin/date -u -d "@$(cat "$SANDBOX/.now")" +%Y%m%dT%H%M%SZ
}

# segment N: the WAL file name of segment N on timeline 1 (16 MB segments)
segment() {
  printf '00000001%08X%08X' $(($1 / 256)) $(($1 % 256))
}

# snapshot_now [REDO [SYSTEM]]: one of our snapshots at the fake clock's time, with the REDO
# property (and the system identifier)
snapshot_now() {
  local args=()
  [[ -z ${1:-} ]] || args=(-o "pitr-bundle:redo-wal=$1")
  [[ -z ${2:-} ]] || args+=(-o "pitr-bundle:system-id=$2")
  "$STUB_BIN/zfs" snapshot "${args[@]}" "$DATASET@$PREFIX$(now_stamp)"
}

# wal DAY FILE...: archived files in a day folder (16 bytes each)
wal() {
  local day=$1 file
  shift
  mkdir -p "$ARCHIVE/$day"
  for file in "$@"; do printf '0123456789abcdef' >"$ARCHIVE/$day/$file"; done
}

archived() {
  (cd "$ARCHIVE" && find . -type f | sed 's|^\./||' | sort)
}

@test "wal-retention: deletes only WAL before the window anchor's REDO point; history, newer files and strangers stay" {
  # snapshots every 3 days; the window's anchor is the newest one before now - WINDOW days
  local days=$((WINDOW + 7)) d anchor_redo
  set_clock "2026-03-01 08:01:00"
  for ((d = 0; d < days; d++)); do
    wal "$(/bin/date -u -d "2026-03-01 + $d days" +%F)" "$(segment $((d * 10 + 1)))" "$(segment $((d * 10 + 2)))"
    if ((d % 3 == 0)); then snapshot_now "$(segment $((d * 10)))"; fi
    advance 86400
  done
  wal 2026-03-01 00000002.history "$(segment 1).partial" "$(segment 1).00000028.backup" notes.txt
  anchor_day=$(((days - WINDOW - 1) / 3 * 3))
  anchor_redo=$(segment $((anchor_day * 10)))
  run -0 "$RETENTION"
  [[ $output == *"first WAL file kept: $anchor_redo"* ]]
  while read -r file; do
    name=${file#*/}
    if [[ $name == *.history || $name == notes.txt ]]; then continue; fi
    [[ ! ${name:8:16} < ${anchor_redo:8:16} ]] || { echo "kept too much: $file"; false; }
  done < <(archived)
  for ((d = anchor_day; d < days; d++)); do
    [ -e "$ARCHIVE/$(/bin/date -u -d "2026-03-01 + $d days" +%F)/$(segment $((d * 10 + 1)))" ]
  done
  [ -e "$ARCHIVE/2026-03-01/00000002.history" ]
  [ -e "$ARCHIVE/2026-03-01/notes.txt" ]
  [ ! -e "$ARCHIVE/2026-03-01/$(segment 1).partial" ]
  [ ! -e "$ARCHIVE/2026-03-01/$(segment 1).00000028.backup" ]
  # emptied day folders go, the kept ones stay
  [ ! -d "$ARCHIVE/2026-03-02" ]
  [[ $output == *"freed $(( (anchor_day) * 2 + 2)) WAL file(s), $(( ((anchor_day) * 2 + 2) * 16)) bytes"* ]]
  calls "^logger -t pitr-wal-retention-$(cluster_fact "['name']") -- done: freed " | grep -q .
  [ "$("$STUB_BIN/zfs" get -H -o value pitr-bundle:wal-kept-from "$DATASET")" = "$anchor_redo" ]
  # a second run finds nothing more to delete
  : >"$STUB_LOG"
  run -0 "$RETENTION"
  [[ $output == *"freed 0 WAL file(s), 0 bytes"* ]]
  [ -z "$(calls '^(rm|zfs set|rmdir)')" ]
}

@test "wal-retention: a snapshot with a clone keeps the WAL from its REDO point" {
  set_clock "2026-03-01 08:01:00"
  wal 2026-03-01 "$(segment 1)" "$(segment 2)"
  snapshot_now "$(segment 1)"
  first="$DATASET@$PREFIX$(now_stamp)"
  advance $((86400 * 2))
  wal "$(/bin/date -u -d "@$(cat "$SANDBOX/.now")" +%F)" "$(segment 50)"
  snapshot_now "$(segment 50)"
  advance $((86400 * (WINDOW + 3)))
  "$STUB_BIN/zfs" create -p -o mountpoint="$SANDBOX/r" "$POOL/restore"
  "$STUB_BIN/zfs" clone -o mountpoint="$SANDBOX/r/c" "$first" "$POOL/restore/c"
  run -0 "$RETENTION"
  [ -e "$ARCHIVE/2026-03-01/$(segment 1)" ]
  "$STUB_BIN/zfs" destroy "$POOL/restore/c"
  run -0 "$RETENTION"
  [ ! -e "$ARCHIVE/2026-03-01/$(segment 1)" ]
}

@test "wal-retention: a snapshot without the REDO property counts with an older one's; none known: nothing goes" {
  set_clock "2026-03-01 08:01:00"
  wal 2026-03-01 "$(segment 1)" "$(segment 5)" "$(segment 9)"
  snapshot_now
  advance $((86400 * (WINDOW + 2)))
  snapshot_now
  advance 3600
  run -0 "$RETENTION"
  [[ $output == *"no pitr-bundle:redo-wal: every WAL file is kept"* ]]
  [ "$(archived | wc -l)" -eq 3 ]
  set_clock "2026-02-20 08:01:00"
  snapshot_now "$(segment 5)"
  set_clock "2026-03-20 08:01:00"
  run -0 "$RETENTION"
  [[ $output == *"first WAL file kept: $(segment 5)"* ]]
  [ "$(archived)" = "$(printf '2026-03-01/%s\n' "$(segment 5)" "$(segment 9)")" ]
}

@test "wal-retention: --dry-run says what it would free and changes nothing" {
  wal 2026-01-01 "$(segment 1)" "$(segment 2)"
  set_clock "2026-01-02 08:01:00"
  snapshot_now "$(segment 3)"
  set_clock "2026-03-01 08:01:00"
  before=$(archived)
  run -0 "$RETENTION" --dry-run
  [[ $output == *"would free 2 WAL file(s), 32 bytes; would remove 1 empty day folder(s)"* ]]
  [ "$(archived)" = "$before" ]
  [ -z "$(calls '^(rm|rmdir|zfs set)')" ]
}

@test "wal-retention: without snapshots nothing goes; a held lock refuses" {
  wal 2026-01-01 "$(segment 1)"
  run -0 "$RETENTION"
  [[ $output == *"no snapshot of $DATASET yet"* ]]
  [ -e "$ARCHIVE/2026-01-01/$(segment 1)" ]
  stub flock 'exit 1'
  run -3 "$RETENTION"
  [[ $output == *"another run holds"* ]]
}

@test "wal-retention: the recorded first kept WAL file never moves back" {
  set_clock "2026-01-02 08:01:00"
  snapshot_now "$(segment 30)"
  set_clock "2026-03-01 08:01:00"
  snapshot_now "$(segment 90)"
  run -0 "$RETENTION"
  [ "$("$STUB_BIN/zfs" get -H -o value pitr-bundle:wal-kept-from "$DATASET")" = "$(segment 30)" ]
  "$STUB_BIN/zfs" set "pitr-bundle:wal-kept-from=$(segment 60)" "$DATASET"
  run -0 "$RETENTION"
  [ "$("$STUB_BIN/zfs" get -H -o value pitr-bundle:wal-kept-from "$DATASET")" = "$(segment 60)" ]
}

# generations: the archive is of system NEW (the dataset records it), an earlier system OLD's
# WAL is set apart in generations/OLD; OLD's snapshots have later WAL names than NEW's
readonly OLD=7301234567890123456 NEW=7399999999999999999

@test "wal-retention: only the archive's system's snapshots count for the archive" {
  "$STUB_BIN/zfs" set "pitr-bundle:system-id=$NEW" "$DATASET"
  set_clock "2026-01-02 08:01:00"
  snapshot_now "$(segment 90)" "$OLD"
  set_clock "2026-03-01 08:01:00"
  snapshot_now "$(segment 90)" "$OLD"
  advance 3600
  wal 2026-03-01 "$(segment 1)" "$(segment 2)" "$(segment 3)"
  snapshot_now "$(segment 2)" "$NEW"
  advance 3600
  run -0 "$RETENTION"
  # the old system's REDO points (later names) neither anchor nor set the floor
  [[ $output == *"anchor snapshot $DATASET@${PREFIX}20260301T090100Z;"* ]]
  [[ $output == *"first WAL file kept: $(segment 2)"* ]]
  [ "$(archived)" = "$(printf '2026-03-01/%s\n' "$(segment 2)" "$(segment 3)")" ]
  [ "$("$STUB_BIN/zfs" get -H -o value pitr-bundle:wal-kept-from "$DATASET")" = "$(segment 2)" ]
}

@test "wal-retention: a new system without a snapshot yet keeps every WAL file" {
  "$STUB_BIN/zfs" set "pitr-bundle:system-id=$NEW" "$DATASET"
  set_clock "2026-01-02 08:01:00"
  snapshot_now "$(segment 90)" "$OLD"
  set_clock "2026-03-01 08:01:00"
  wal 2026-03-01 "$(segment 1)" "$(segment 2)"
  run -0 "$RETENTION"
  [[ $output == *"no snapshot of $DATASET yet (of the archive's system)"* ]]
  [ "$(archived | wc -l)" -eq 2 ]
}

@test "wal-retention: an earlier system's WAL stays while a snapshot of it is left, and goes with the last" {
  "$STUB_BIN/zfs" set "pitr-bundle:system-id=$NEW" "$DATASET"
  mkdir -p "$SANDBOX/generations/$OLD/2026-01-02"
  printf x >"$SANDBOX/generations/$OLD/2026-01-02/$(segment 90)"
  set_clock "2026-01-02 08:01:00"
  snapshot_now "$(segment 90)" "$OLD"
  old="$DATASET@$PREFIX$(now_stamp)"
  set_clock "2026-03-01 08:01:00"
  snapshot_now "$(segment 2)" "$NEW"
  run -0 "$RETENTION"
  [[ $output == *"generation of system $OLD: 1 snapshot(s) of it (or recording no system) left"* ]]
  [ -e "$SANDBOX/generations/$OLD/2026-01-02/$(segment 90)" ]
  # a snapshot that records no system may be of it: the WAL stays too
  "$STUB_BIN/zfs" destroy -d "$old"
  set_clock "2026-01-03 08:01:00"
  snapshot_now "$(segment 91)"
  legacy="$DATASET@$PREFIX$(now_stamp)"
  set_clock "2026-03-01 09:01:00"
  run -0 "$RETENTION"
  [ -e "$SANDBOX/generations/$OLD/2026-01-02/$(segment 90)" ]
  "$STUB_BIN/zfs" destroy -d "$legacy"
  run -0 "$RETENTION" --dry-run
  [[ $output == *"would run: rm -rf -- $SANDBOX/generations/$OLD"* ]]
  [ -e "$SANDBOX/generations/$OLD" ]
  run -0 "$RETENTION"
  [[ $output == *"generation of system $OLD: no snapshot of it left: its WAL goes"* ]]
  [ ! -e "$SANDBOX/generations/$OLD" ]
}

# the span is exhaustive (44 runs, each checked against the model): `check --deep` runs it
# bats test_tags=deep
@test "wal-retention: over a simulated span of snapshot runs the archive stays bounded and no needed WAL file ever goes" {
  # a fake standby whose REDO point trails the newest archived segment by a few segments
  # (running in recovery, PostgreSQL 16: a fixed major, the suite does not read the cluster's)
  PGHOME=$BATS_TEST_TMPDIR/pghome
  fake_standby "$PGHOME" "$SANDBOX/pgdata" 16
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  STUB_TARGET=$PGHOME/bin stub pg_controldata 'n=$(cat "$SANDBOX/.redo")
printf "pg_control version number:            1300\n"
printf "Database system identifier:           7301234567890123456\n"
printf "Database cluster state:               in archive recovery\n"
printf "Latest checkpoint'"'"'s REDO location:    %X/%X\n" $((n / 256)) $(((n % 256) * 16777216 + 40))
printf "Latest checkpoint'"'"'s TimeLineID:       1\n"
printf "Bytes per WAL segment:                16777216\n"'
  SNAPSHOT=$(rebase "$(cluster_script snapshot)" LOCK_FILE="$SANDBOX/snapshot.lock" \
    PGHOME="$PGHOME" PGDATA="$SANDBOX/pgdata")
  local n=0 run_no day max_files=0 files
  set_clock "2026-01-01 08:01:00"
  # a run every 30 hours for 55 days; 6 segments archived between runs
  for ((run_no = 0; run_no < 44; run_no++)); do
    for ((i = 0; i < 6; i++)); do
      n=$((n + 1))
      wal "$(/bin/date -u -d "@$(cat "$SANDBOX/.now")" +%F)" "$(segment "$n")"
      advance 3600
    done
    echo $((n - 3)) >"$SANDBOX/.redo"
    run -0 "$SNAPSHOT"
    run -0 "$RETENTION"
    # the model: the newest snapshot taken before now - window, else the oldest, and every
    # newer one, replay from their REDO segment (recorded independently here)
    printf '%s %s\n' "$(now_stamp)" $((n - 3)) >>"$SANDBOX/.model"
    "$PYTHON" -S - "$SANDBOX/.model" "$(cat "$SANDBOX/.now")" "$WINDOW" "$n" "$ARCHIVE" \
      "$("$STUB_BIN/zfs" list -H -t snapshot -o name -d 1 -s creation "$DATASET" | sed "s|.*@$PREFIX||")" <<'PY'
import datetime, os, sys
model, now, window, newest, archive, kept = sys.argv[1:]
now, window, newest = int(now), int(window), int(newest)
kept = set(kept.split())
redo = {}
for line in open(model):
    stamp, segment = line.split()
    redo[stamp] = int(segment)
snaps = sorted(s for s in redo if s in kept)
start = datetime.datetime.fromtimestamp(now - window * 86400, datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
anchor = max([s for s in snaps if s < start] or [snaps[0]])
needed = min(redo[s] for s in snaps if s >= anchor)
present = set()
for day in os.listdir(archive):
    for name in os.listdir(os.path.join(archive, day)):
        present.add(int(name[8:16], 16) * 256 + int(name[16:24], 16))
missing = [n for n in range(needed, newest + 1) if n not in present]
assert not missing, f"needed segments deleted: {missing[:5]} (needed from {needed})"
PY
    files=$(archived | wc -l)
    ((files > max_files)) && max_files=$files
    advance $((30 * 3600 - 6 * 3600))
  done
  # bounded: the window plus the gap to the anchor snapshot (30 h) and the REDO lag, not 80 days
  [ "$max_files" -le $(((WINDOW * 24 + 30 + 30) / 5 + 6)) ] || { echo "max files $max_files"; false; }
  [ "$(archived | wc -l)" -lt $((n / 2)) ]
}
