#!/usr/bin/env bats
# The Nagios check (role "monitor") and its installer, with stubs. Its OK path on a healthy
# host is proven for real (tests/test_pitr_zfs_pg.py).

load test_helper

setup() {
  setup_stubs
  POOL=$(query "facts['pool']['name']")
  # the check is installed, not run from the bundle (no run order); its installer has one
  CHECK=$BUNDLE/$(query "[f['path'] for f in m['files'] if f['role'] == 'monitor' and f['order'] is None][0]")
  INSTALLER=$BUNDLE/$(query "[f['path'] for f in m['files'] if f['role'] == 'monitor' and f['order'] is not None][0]")
  stub zpool 'printf "ONLINE\t12%%\n"'
  stub pgrep 'exit 1'
  ARCHIVE_DATASET=$(query "[d['name'] for d in facts['datasets'] if d['mountpoint'] == facts['archive_root']][0]")
  archive_used 10
}

# archive_used PERCENT: the archive dataset takes PERCENT of a pool of 1000 GB (zfs get -p)
archive_used() {
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub zfs "if [[ \$* == 'get -H -p -o name,property,value used,available '* ]]; then
  printf '%s\tused\t%s\n%s\tavailable\t%s\n%s\tused\t%s\n' $POOL 400000000000 $POOL 600000000000 \
    $ARCHIVE_DATASET \$(($1 * 10000000000))
else
  FAKE_CMD=zfs exec bash $SUITES_DIR/fake_zfs.bash \"\$@\"
fi"
}

# a_cluster_world: the first cluster's standby running with its receiver, fresh WAL, a fresh
# archive day folder, a fresh snapshot and a successful drill, all inside the sandbox
a_cluster_world() {
  CLUSTER=$(cluster_fact "['name']")
  PGDATA=$SANDBOX/pgdata ARCHIVE=$SANDBOX/arch STATE=$SANDBOX/drill.state
  local wal_dir
  wal_dir=$(query "'pg_wal' if int(facts['clusters'][0]['postgres_major'].split('.')[0]) >= 10 else 'pg_xlog'")
  mkdir -p "$PGDATA/$wal_dir" "$ARCHIVE/$(date -u +%F)" "$ARCHIVE/2020-01-01"
  sleep 300 &
  printf '%s\n/x\n1\n%s\n' "$!" "$(cluster_fact "['port']")" >"$PGDATA/postmaster.pid"
  touch "$PGDATA/$wal_dir/000000010000000000000001"
  # an archived segment is whole (the continuity check reads sizes; a sparse file)
  truncate -s 16M "$ARCHIVE/$(date -u +%F)/000000010000000000000001"
  printf 'when=x\nresult=ok\nlast_ok_epoch=%s\n' "$(date -u +%s)" >"$STATE"
  FAKE_CMD=zpool bash "$SUITES_DIR/fake_zfs.bash" create "$POOL" mirror /dev/a /dev/b
  "$STUB_BIN/zfs" create -p -o mountpoint=/x "$(cluster_fact "['dataset']")"
  local redo=()
  [[ -z ${NO_REDO:-} ]] && redo=(-o pitr-bundle:redo-wal=000000010000000000000001)
  "$STUB_BIN/zfs" snapshot "${redo[@]}" \
    "$(cluster_fact "['dataset']")@$(cluster_fact "['snapshots']['prefix']")$(date -u +%Y%m%dT%H%M%SZ)"
  make_check
  stub pgrep 'exit 0'
}

# make_check: the check as installed, its per-cluster paths in the sandbox (RTO: its seconds,
# or none)
make_check() {
  sed -e "s|'\?$(cluster_fact "['paths']['pgdata']")'\? |$PGDATA |" \
    -e "s|'\?$(cluster_fact "['paths']['archive']")'\? |$ARCHIVE |" \
    -e "s|check_drill $CLUSTER [^ ]* |check_drill $CLUSTER $STATE |" \
    -e "s|check_rto $CLUSTER [^ ]* [^ ]* |check_rto $CLUSTER $STATE ${RTO:-\'\'} |" "$CHECK" >"$BATS_TEST_TMPDIR/check"
  chmod +x "$BATS_TEST_TMPDIR/check"
}

teardown() {
  local pid
  pid=$(sed -n 1p "$SANDBOX/pgdata/postmaster.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
}

@test "monitor: one status line with perfdata, CRITICAL naming each cluster whose standby is down" {
  run -2 "$CHECK"
  [ "${#lines[@]}" -eq 1 ]
  [[ $output == "PITR CRITICAL - "*" | "* ]]
  for cluster in $(query "[c['name'] for c in facts['clusters']]"); do
    [[ $output == *"$cluster: standby not running"* ]]
  done
  [[ $output == *"pool_capacity=12%;"* ]]
}

@test "monitor: a degraded pool is CRITICAL" {
  stub zpool 'printf "DEGRADED\t12%%\n"'
  run -2 "$CHECK" --cluster none
  [[ $output == "PITR CRITICAL - pool $POOL is DEGRADED"* ]]
}

@test "monitor: a pool over the warning capacity is a WARNING" {
  warn=$(query "facts['monitor']['pool_capacity_warn']")
  stub zpool "printf 'ONLINE\t%s%%\n' $warn"
  run -1 "$CHECK" --cluster none
  [[ $output == "PITR WARNING - pool $POOL $warn% full"* ]]
}

@test "monitor: a pool at the critical capacity is CRITICAL; just below the warning it is OK" {
  local warn crit
  warn=$(query "facts['monitor']['pool_capacity_warn']")
  crit=$(query "facts['monitor']['pool_capacity_crit']")
  stub zpool "printf 'ONLINE\t%s%%\n' $crit"
  run -2 "$CHECK" --cluster none
  [[ $output == "PITR CRITICAL - pool $POOL $crit% full"* ]]
  [[ $output == *"pool_capacity=$crit%;$warn;$crit;0;100"* ]]
  stub zpool "printf 'ONLINE\t%s%%\n' $((warn - 1))"
  run -0 "$CHECK" --cluster none
  [[ $output == "PITR OK"* ]]
}

@test "monitor: UNKNOWN (3) when not run as root" {
  stub id 'echo 1000'
  run -3 "$CHECK"
  [[ $output == "PITR UNKNOWN - must run as root"* ]]
}

@test "monitor installer: the sudo rule is checked with visudo before it is installed" {
  stub visudo 'exit 1'
  installer=$(rebase_installer "$INSTALLER" CHECK="$SANDBOX/pitr-check" SUDOERS_FILE="$SANDBOX/sudoers")
  run -1 "$installer"
  [[ $output == *"visudo rejects the generated sudo rule"* ]]
  [ ! -e "$SANDBOX/sudoers" ]
}

@test "monitor installer: installs the bundle's own check byte for byte (root, 0755), once" {
  fake_ownership
  stub visudo 'exit 0'
  installer=$(rebase_installer "$INSTALLER" CHECK="$SANDBOX/pitr-check" SUDOERS_FILE="$SANDBOX/sudoers")
  run -0 "$installer" --dry-run
  [[ $output == *"would install the bundle's ${CHECK#"$BUNDLE"/} as $SANDBOX/pitr-check"* ]]
  [ ! -e "$SANDBOX/pitr-check" ]
  run -0 "$installer"
  cmp "$SANDBOX/pitr-check" "$CHECK"
  [ "$(stat -c '%U %a' "$SANDBOX/pitr-check")" = "root 755" ]
  : >"$STUB_LOG"
  run -0 "$installer"
  [[ $output == *"$SANDBOX/pitr-check: already installed"* ]]
  [ -z "$(calls '^install')" ]
}

@test "monitor installer: a check beside it that differs from SHA256SUMS, or none, is refused (3), nothing installed" {
  fake_ownership
  stub visudo 'exit 0'
  copy=$(bundle_copy)
  relative=${CHECK#"$BUNDLE"/}
  installer=$(rebase_installer "$copy/${INSTALLER#"$BUNDLE"/}" CHECK="$SANDBOX/pitr-check" \
    SUDOERS_FILE="$SANDBOX/sudoers")
  printf '\n' >>"$copy/$relative"
  run -3 "$installer"
  [[ $output == *"$relative does not match the bundle's SHA256SUMS"* ]]
  rm "$copy/$relative"
  run -3 "$installer" --dry-run
  [[ $output == *"$relative is missing"* ]]
  rm "$copy/SHA256SUMS"
  run -3 "$installer"
  [[ $output == *"SHA256SUMS"* ]]
  [ -z "$(calls '^install')" ]
  [ ! -e "$SANDBOX/pitr-check" ] && [ ! -e "$SANDBOX/sudoers" ]
}

@test "monitor: a healthy cluster is OK, with every figure in the perfdata" {
  a_cluster_world
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR OK - "* ]]
  for figure in pool_capacity archive_share "${CLUSTER}_restore_age" "${CLUSTER}_archive_age" \
    "${CLUSTER}_snapshot_age" "${CLUSTER}_drill_age"; do
    [[ $output == *" $figure="* || $output == *"| $figure="* ]]
  done
}

@test "monitor: the WAL receiver is looked up under the title of the cluster's major" {
  a_cluster_world
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  local major
  major=$(cluster_fact "['postgres_major']")
  # the title changed in 11: "wal receiver process" up to 10 (seen on a real 10), "walreceiver" since
  if [[ $major == 9.* || $major == 10 ]]; then
    calls '^pgrep -P [0-9]+ -f wal receiver process$' | grep -q .
  else
    calls '^pgrep -P [0-9]+ -f walreceiver$' | grep -q .
  fi
}

@test "monitor: the archive look-up reads only the newest UTC day folders" {
  a_cluster_world
  stub find 'printf "%s\n" "$*" >>"$BATS_TEST_TMPDIR/find.log"; exec /usr/bin/find "$@"'
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  grep -F "$ARCHIVE/$(date -u +%F) -maxdepth 1" "$BATS_TEST_TMPDIR/find.log"
  ! grep -F "$ARCHIVE/2020-01-01" "$BATS_TEST_TMPDIR/find.log" || false
  # the whole archive is listed once, by the continuity check (its day folders, no deeper)
  [ "$(grep -cE "$ARCHIVE( |$)" "$BATS_TEST_TMPDIR/find.log")" -eq 1 ]
  grep -qE "^$ARCHIVE -mindepth 2 -maxdepth 2 " "$BATS_TEST_TMPDIR/find.log"
}

@test "monitor: nothing archived since yesterday is CRITICAL, whatever older folders hold" {
  a_cluster_world
  rm -r "${ARCHIVE:?}/$(date -u +%F)"
  touch "$ARCHIVE/2020-01-01/000000010000000000000009"
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *"$CLUSTER: archive delay, nothing archived since $(date -u -d yesterday +%F) 00:00 UTC"* ]]
}

@test "monitor: an archive older than the thresholds in today's folder is CRITICAL" {
  a_cluster_world
  touch -d '-3 hours' "$ARCHIVE/$(date -u +%F)/000000010000000000000001"
  run "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  # (right after midnight UTC the file may fall into yesterday's folder: still found)
  [ "$status" -eq 2 ]
  [[ $output == *"$CLUSTER: archive delay, nothing archived for "* ]]
}

@test "monitor: the archive dataset's share of the pool warns, then goes critical" {
  warn=$(query "facts['monitor']['archive_share_warn']")
  crit=$(query "facts['monitor']['archive_share_crit']")
  archive_used "$warn"
  run -1 "$CHECK" --cluster none
  [[ $output == "PITR WARNING - archive $ARCHIVE_DATASET takes $warn% of pool $POOL"* ]]
  archive_used "$crit"
  run -2 "$CHECK" --cluster none
  [[ $output == "PITR CRITICAL - archive $ARCHIVE_DATASET takes $crit% of pool $POOL"* ]]
}

@test "monitor: a failed last drill is CRITICAL, with its error" {
  a_cluster_world
  printf 'when=2026-11-29 05:17:00+00\nresult=failed\nerror=restore.sh failed (exit 1)\nlast_ok_epoch=%s\n' \
    "$(date -u +%s)" >"$STATE"
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR CRITICAL - $CLUSTER: the last restore drill (2026-11-29 05:17:00+00) failed: restore.sh failed (exit 1)"* ]]
}

@test "monitor: no successful drill within the spec's days is CRITICAL; none at all too" {
  a_cluster_world
  days=$(cluster_fact "['monitor']['drill_max_age_days']")
  printf 'when=x\nresult=ok\nlast_ok_epoch=%s\n' "$(($(date -u +%s) - (days + 1) * 86400 - 60))" >"$STATE"
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *"$CLUSTER: no successful restore drill for $((days + 1)) days (limit $days)"* ]]
  rm "$STATE"
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *"$CLUSTER: no restore drill has run ($STATE missing)"* ]]
}

# wal_since_snapshot: the standby writes segment 0x11 (16 MiB) last; the snapshot's REDO WAL
# file is segment 1 (a_cluster_world): 17 segments, 272 MiB
wal_since_snapshot() {
  local wal_dir
  wal_dir=$(query "'pg_wal' if int(facts['clusters'][0]['postgres_major'].split('.')[0]) >= 10 else 'pg_xlog'")
  # a recycled segment with a future name, older: not the position
  truncate -s 16M "$PGDATA/$wal_dir/000000010000000000000030"
  touch -d '-1 hour' "$PGDATA/$wal_dir/000000010000000000000030"
  truncate -s 16M "$PGDATA/$wal_dir/000000010000000000000011"
}

@test "monitor: the estimated time of a restore to now, from the last drill's replay rate and fixed costs" {
  RTO=60 a_cluster_world
  wal_since_snapshot
  # the drill replayed 256 MiB at 16 MiB/s and restore.sh took 4 s more: 272/16 + 4 = 21 s
  printf 'replay_bytes=268435456\nreplay_seconds=16.000\nreplay_bytes_per_second=16777216\nrestore_seconds=20.000\n' >>"$STATE"
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *" ${CLUSTER}_wal_since_snapshot=285212672B ${CLUSTER}_restore_estimate=21s;45;60"* ]]
  RTO=25 make_check
  run -1 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR WARNING - $CLUSTER: a restore to now would take about 21s (RTO 25s): 272 MB of WAL since "*" at the last drill's 16 MB/s, plus 4s fixed |"* ]]
  RTO=20 make_check
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR CRITICAL - $CLUSTER: a restore to now would take about 21s (RTO 20s)"* ]]
}

@test "monitor: without a drill that replayed enough WAL, the estimate uses the spec's replay rate" {
  RTO=10 a_cluster_world
  wal_since_snapshot
  # 16 MiB replayed: too little to measure a rate
  printf 'replay_bytes=16777216\nreplay_seconds=0.100\nreplay_bytes_per_second=167772160\nrestore_seconds=3.000\n' >>"$STATE"
  rate=$(sed -n "s/^ *check_rto $CLUSTER .* \([0-9]*\)\$/\1/p" "$CHECK")
  estimate=$(((285212672 + rate * 1048576 - 1) / (rate * 1048576)))
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *"$CLUSTER: a restore to now would take about ${estimate}s (RTO 10s): 272 MB of WAL since "*" at the spec's $rate MB/s, plus 0s fixed"* ]]
  [[ $output == *" ${CLUSTER}_restore_estimate=${estimate}s;7;10"* ]]
}

@test "monitor: a snapshot without its REDO WAL file: no estimate, a WARNING only when an RTO is set" {
  NO_REDO=1 a_cluster_world
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output != *_restore_estimate=* ]]
  RTO=60 make_check
  run -1 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *"$CLUSTER: cannot estimate a restore's time (newest snapshot "*", REDO WAL -, newest WAL 000000010000000000000001)"* ]]
}

# dropped_count LINE: the archive helper's drop count beside the check's archive folder
dropped_count() {
  local file=$SANDBOX/dropped-wal
  sed -i "s|'\\?$(dirname "$(cluster_fact "['paths']['archive']")")/dropped-wal'\\? |$file |" "$BATS_TEST_TMPDIR/check"
  printf '%s\n' "$1" >"$file"
}

@test "monitor: a segment missing from the archive is CRITICAL, naming it and the restorable ranges either side" {
  a_cluster_world
  local day=$ARCHIVE/$(date -u +%F) i
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *" ${CLUSTER}_archive_missing_segments=0;;1"* ]]
  for i in 2 3 4 5; do truncate -s 16M "$day/00000001000000000000000$i"; done
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  rm "$day/000000010000000000000003"
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *"$CLUSTER: archive gap: 000000010000000000000003 missing; restorable up to 000000010000000000000002 (archived $(date -u +%F) "*" UTC) and from 000000010000000000000004 on; 1 segment(s) missing up to 000000010000000000000005; take a new base backup"* ]]
  [[ $output == *" ${CLUSTER}_archive_missing_segments=1;;1"* ]]
}

@test "monitor: the continuity check starts at the oldest snapshot's REDO WAL file, or the first file the retention kept" {
  a_cluster_world
  local day=$ARCHIVE/$(date -u +%F) i
  for i in 4 5; do truncate -s 16M "$day/00000001000000000000000$i"; done
  # the world's snapshot starts at ...01: 02 and 03 are missing
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *"archive gap: 000000010000000000000002 missing; restorable up to 000000010000000000000001"* ]]
  "$STUB_BIN/zfs" set pitr-bundle:wal-kept-from=000000010000000000000004 "$(cluster_fact "['dataset']")"
  rm "$day/000000010000000000000001"
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  "$STUB_BIN/zfs" set pitr-bundle:wal-kept-from=000000010000000000000003 "$(cluster_fact "['dataset']")"
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *"archive gap: 000000010000000000000003 missing; it is the first segment a restore from the oldest snapshot needs: nothing restorable before it and from 000000010000000000000004 on"* ]]
}

@test "monitor: a missing archive folder is reported once, by the freshness check" {
  a_cluster_world
  rm -r "${ARCHIVE:?}"
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *"$CLUSTER: the archive folder $ARCHIVE is missing"* ]]
  [[ $output != *"continuity"* ]]
}

@test "monitor: an archive whose segment size is none is UNKNOWN, naming it" {
  a_cluster_world
  truncate -s 1000 "$ARCHIVE/$(date -u +%F)/000000010000000000000001"
  run -3 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *"$CLUSTER: archive continuity not checked: segment size 1000 is not a WAL segment size"* ]]
}

@test "monitor: WAL the primary dropped since the newest snapshot's REDO point is CRITICAL; a later snapshot clears it" {
  a_cluster_world
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *" ${CLUSTER}_dropped_wal=0;;1"* ]]
  dropped_count "2 33554432 000000010000000000000001 2026-12-06T10:00:00Z"
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *"$CLUSTER: the primary dropped 2 WAL file(s) (archive_queue_max; the last 000000010000000000000001 at 2026-12-06T10:00:00Z) and no snapshot since serves a restore past it (newest: $(cluster_fact "['dataset']")@"*", REDO 000000010000000000000001); take a new base backup"* ]]
  [[ $output == *" ${CLUSTER}_dropped_wal=2;;1"* ]]
  # a snapshot whose REDO point comes after the dropped segment serves restores past it
  "$STUB_BIN/zfs" snapshot -o pitr-bundle:redo-wal=000000010000000000000002 \
    "$(cluster_fact "['dataset']")@$(cluster_fact "['snapshots']['prefix']")$(date -u -d '+1 min' +%Y%m%dT%H%M%SZ)"
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *" ${CLUSTER}_dropped_wal=2;;1"* ]]
}

@test "monitor: a dropped timeline history file counts until a snapshot taken after the drop; without a snapshot any drop does" {
  a_cluster_world
  dropped_count "1 42 00000002.history $(date -u -d '-1 hour' +%FT%TZ)"
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  dropped_count "1 42 00000002.history $(date -u -d '+1 hour' +%FT%TZ)"
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *"$CLUSTER: the primary dropped 1 WAL file(s) (archive_queue_max; the last 00000002.history at "* ]]
  dropped_count "1 16777216 000000010000000000000000 2026-12-06T10:00:00Z"
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  "$STUB_BIN/zfs" destroy -d "$("$STUB_BIN/zfs" list -H -t snapshot -o name -d 1 -s creation "$(cluster_fact "['dataset']")")"
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *"no snapshot since serves a restore past it (newest: none, REDO unknown)"* ]]
}

@test "monitor: an unreadable drop count is UNKNOWN, naming it" {
  a_cluster_world
  dropped_count "garbage"
  run -3 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *"$CLUSTER: the archive helper's drop count $SANDBOX/dropped-wal is unreadable"* ]]
}
