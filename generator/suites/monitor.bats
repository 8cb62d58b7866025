#!/usr/bin/env bats
# The Nagios check (role "monitor") and its installer, with stubs. Its OK path on a healthy
# host is proven for real (tests/test_pitr_zfs_pg.py).

load test_helper
load monitor_fixtures

setup() {
  setup_stubs
  POOL=$(query "facts['pool']['name']")
  # the check is installed, not run from the bundle (no run order); its installer has one
  CHECK=$BUNDLE/$(query "[f['path'] for f in m['files'] if f['role'] == 'monitor' and f['order'] is None][0]")
  BUNDLE_CHECK=$CHECK # the bundle's own, which the installer installs
  INSTALLER=$BUNDLE/$(query "[f['path'] for f in m['files'] if f['role'] == 'monitor' and f['order'] is not None][0]")
  # a scrub that found nothing, finished an hour ago
  scrub_on openzfs_done "$(($(date +%s) - 3600))" >"$SANDBOX/zpool-status"
  pool_answers 'ONLINE\t12%%'
  stub pgrep 'exit 1'
  ARCHIVE_DATASET=$(query "[d['name'] for d in facts['datasets'] if d['mountpoint'] == facts['archive_root']][0]")
  archive_used 10
  # a replica's check also reads its pulls (replica.bats tests that part): here each copied
  # dataset pulled a minute ago, so that the pool's tests see the pool alone
  if grep -q '^readonly REPLICA_STATE=' "$CHECK"; then
    CHECK=$(rebase "$CHECK" REPLICA_STATE="$SANDBOX/replica.state")
    local copy
    for copy in $(awk '$1 == "check_replica" { print $2 }' "$CHECK"); do
      printf '%s\tok\t%s\tpitr-x\t%s\n' "$copy" "$(date +%s)" "$(($(date +%s) - 60))"
    done >"$SANDBOX/replica.state"
  fi
}

# needs_clusters: the cluster tests need a cluster of the host's own (a replica has none)
needs_clusters() {
  [[ $(query "len(facts['clusters'])") -gt 0 ]] || skip "no cluster of this host's own (a replica host)"
}

# pool_answers FORMAT: zpool list prints FORMAT (printf: health, capacity), zpool status the
# file $SANDBOX/zpool-status
pool_answers() {
  stub zpool "if [[ \$1 == status ]]; then cat '$SANDBOX/zpool-status'; else printf '$1\n'; fi"
}

# scrub_on FIXTURE EPOCH: a zpool status fixture (monitor_fixtures.bash) whose scan dates are
# EPOCH's, as zpool prints them (ctime, local time)
scrub_on() {
  "$1" | sed -E "s/(on|since) [A-Z][a-z]{2} [A-Z][a-z]{2} [ 0-9][0-9] [0-9:]{8} [0-9]{4}/\1 $(date -d "@$2" '+%a %b %e %H:%M:%S %Y')/"
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
  needs_clusters
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
  replay_world "$PGDATA/$wal_dir"
}

# replay_world WAL_DIR: the cluster's psql and pg_controldata as stubs in $SANDBOX/pghome
# answering as a healthy standby (psql prints $SANDBOX/psql.answer, pg_controldata
# $SANDBOX/controldata), run as they are by runuser; the startup process replays the newest
# file in WAL_DIR (pgrep -a: its title; $SANDBOX/startup.title instead, when there is one)
replay_world() {
  STANDBY_WAL=$1
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub pgrep '[[ " $* " == *" -a "* ]] || exit 0
[[ ! -f $SANDBOX/startup.title ]] || { cat "$SANDBOX/startup.title"; exit 0; }
newest=$(ls -t '"$1"' | grep -m1 -E "^[0-9A-F]{24}$")
echo "4243 postgres: startup process   recovering $newest"'
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  STUB_TARGET=$SANDBOX/pghome/bin stub psql 'cat "$SANDBOX/psql.answer"'
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  STUB_TARGET=$SANDBOX/pghome/bin stub pg_controldata 'cat "$SANDBOX/controldata"'
  stub runuser 'while (($#)) && [[ $1 != -- ]]; do shift; done; shift; exec "$@"'
  echo 't|f|0/3000148|0/3000148|5' >"$SANDBOX/psql.answer"
  controldata_90 "in archive recovery" >"$SANDBOX/controldata"
}

# make_check: the check as installed, its per-cluster paths in the sandbox (RTO: its seconds,
# or none)
make_check() {
  sed -e "s|'\?$(cluster_fact "['paths']['pgdata']")'\? |$PGDATA |" \
    -e "s|'\?$(cluster_fact "['paths']['archive']")'\? |$ARCHIVE |" \
    -e "s|check_drill $CLUSTER [^ ]* |check_drill $CLUSTER $STATE |" \
    -e "s|check_rto $CLUSTER [^ ]* [^ ]* |check_rto $CLUSTER $STATE ${RTO:-\'\'} |" \
    -e "s|check_replay $CLUSTER \([^ ]*\) [^ ]* |check_replay $CLUSTER \1 $SANDBOX/pghome |" \
    -e "s|check_timeline $CLUSTER [^ ]* [^ ]* [01] |check_timeline $CLUSTER $SANDBOX/state/timeline.state $SANDBOX/standby-log ${FOLLOWS:-0} |" \
    -e "${HOT:+s|\(check_replay $CLUSTER [^ ]* [^ ]* [^ ]* [^ ]* [^ ]*\) [01] |\1 $HOT |}" "$CHECK" >"$BATS_TEST_TMPDIR/check"
  chmod +x "$BATS_TEST_TMPDIR/check"
}

teardown() {
  local pid
  pid=$(sed -n 1p "$SANDBOX/pgdata/postmaster.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
}

@test "monitor: one status line with perfdata, CRITICAL naming each cluster whose standby is down" {
  needs_clusters
  run -2 "$CHECK"
  [ "${#lines[@]}" -eq 1 ]
  [[ $output == "PITR CRITICAL - "*" | "* ]]
  for cluster in $(query "[c['name'] for c in facts['clusters']]"); do
    [[ $output == *"$cluster: standby not running"* ]]
  done
  [[ $output == *"pool_capacity=12%;"* ]]
}

@test "monitor: a degraded pool is CRITICAL" {
  pool_answers 'DEGRADED\t12%%'
  run -2 "$CHECK" --cluster none
  [[ $output == "PITR CRITICAL - pool $POOL is DEGRADED"* ]]
}

@test "monitor: a pool over the warning capacity is a WARNING" {
  warn=$(query "facts['monitor']['pool_capacity_warn']")
  pool_answers "ONLINE\t$warn%%"
  run -1 "$CHECK" --cluster none
  [[ $output == "PITR WARNING - pool $POOL $warn% full"* ]]
}

@test "monitor: a pool at the critical capacity is CRITICAL; just below the warning it is OK" {
  local warn crit
  warn=$(query "facts['monitor']['pool_capacity_warn']")
  crit=$(query "facts['monitor']['pool_capacity_crit']")
  pool_answers "ONLINE\t$crit%%"
  run -2 "$CHECK" --cluster none
  [[ $output == "PITR CRITICAL - pool $POOL $crit% full"* ]]
  [[ $output == *"pool_capacity=$crit%;$warn;$crit;0;100"* ]]
  pool_answers "ONLINE\t$((warn - 1))%%"
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
  installer=$(rebase_installer "$INSTALLER" CHECK="$SANDBOX/pitr-check" SUDOERS_FILE="$SANDBOX/sudoers" \
    "?SCRUB_CRON=$SANDBOX/cron.d/pitr-bundle-scrub")
  run -1 "$installer"
  [[ $output == *"visudo rejects the generated sudo rule"* ]]
  [ ! -e "$SANDBOX/sudoers" ]
}

@test "monitor installer: installs the bundle's own check byte for byte (root, 0755), once" {
  fake_ownership
  stub visudo 'exit 0'
  installer=$(rebase_installer "$INSTALLER" CHECK="$SANDBOX/pitr-check" SUDOERS_FILE="$SANDBOX/sudoers" \
    "?SCRUB_CRON=$SANDBOX/cron.d/pitr-bundle-scrub")
  run -0 "$installer" --dry-run
  [[ $output == *"would install the bundle's ${BUNDLE_CHECK#"$BUNDLE"/} as $SANDBOX/pitr-check"* ]]
  [ ! -e "$SANDBOX/pitr-check" ]
  run -0 "$installer"
  cmp "$SANDBOX/pitr-check" "$BUNDLE_CHECK"
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
  relative=${BUNDLE_CHECK#"$BUNDLE"/}
  installer=$(rebase_installer "$copy/${INSTALLER#"$BUNDLE"/}" CHECK="$SANDBOX/pitr-check" \
    SUDOERS_FILE="$SANDBOX/sudoers" "?SCRUB_CRON=$SANDBOX/cron.d/pitr-bundle-scrub")
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
  [[ $output == "PITR WARNING - $CLUSTER: a restore to now would take about 21s (RTO 25s): 272 MB of WAL since "*" at the last drill's 16 MB/s, plus 4s fixed"[\;\ ]* ]]
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

# --- the pool's scrub (zpool status of OpenZFS 2.x and of zfs-fuse: monitor_fixtures.bash) ---

@test "monitor: a recent scrub that found nothing is OK, its age in the perfdata, in both zpool formats" {
  local warn
  warn=$(query "facts['scrub']['warn_seconds']")
  for fixture in openzfs_done zfs_fuse_done; do
    scrub_on "$fixture" "$(($(date +%s) - 86400))" >"$SANDBOX/zpool-status"
    run -0 "$CHECK" --cluster none
    [[ $output == "PITR OK - "* ]]
    [[ $output == *" pool_scrub_age=864"[0-9][0-9]"s;$warn"* ]]
  done
}

@test "monitor: a last scrub older than 1.5 times the scrub schedule's longest wait is a WARNING, in both formats" {
  local warn
  warn=$(query "facts['scrub']['warn_seconds']")
  for fixture in openzfs_done zfs_fuse_done; do
    scrub_on "$fixture" "$(($(date +%s) - warn - 120))" >"$SANDBOX/zpool-status"
    run -1 "$CHECK" --cluster none
    [[ $output == "PITR WARNING - pool $POOL: last scrub finished $(((warn + 120) / 86400)) days ago, on "*"(WARNING from $((warn / 86400)) days: schedule $(query "facts['scrub']['schedule']") "* ]]
    # just inside it: OK
    scrub_on "$fixture" "$(($(date +%s) - warn + 120))" >"$SANDBOX/zpool-status"
    run -0 "$CHECK" --cluster none
  done
}

@test "monitor: a new pool not scrubbed yet is OK with a note until the scrub's warning age, in both formats" {
  local warn
  warn=$(sed -n 's/^readonly SCRUB_WARN=\([0-9]*\) .*/\1/p' "$CHECK")
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub zfs "if [[ \$* == 'get -H -p -o value creation $POOL' ]]; then echo \$((\$(date +%s) - $warn + 120))
elif [[ \$* == 'get -H -p -o name,property,value used,available '* ]]; then
  printf '%s\tused\t%s\n%s\tavailable\t%s\n%s\tused\t%s\n' $POOL 400000000000 $POOL 600000000000 $ARCHIVE_DATASET 100000000000
else
  FAKE_CMD=zfs exec bash $SUITES_DIR/fake_zfs.bash \"\$@\"
fi"
  for fixture in openzfs_none zfs_fuse_none; do
    "$fixture" >"$SANDBOX/zpool-status"
    run -0 "$CHECK" --cluster none
    [[ $output == "PITR OK - "*"pool $POOL: no scrub yet (created "*" ago; schedule "* ]]
  done
}

# openzfs2_none: OpenZFS 2.x prints no scan line at all for a pool never scanned
openzfs2_none() { openzfs_none | grep -v '^ *scan: '; }

@test "monitor: a pool never scrubbed is a WARNING, in both formats" {
  for fixture in openzfs_none openzfs2_none zfs_fuse_none; do
    "$fixture" >"$SANDBOX/zpool-status"
    ! grep -q '^ *scan: ' "$SANDBOX/zpool-status" || [[ $fixture != openzfs2_none ]]
    run -1 "$CHECK" --cluster none
    [[ $output == "PITR WARNING - pool $POOL has no finished scrub (zpool status: none requested): run zpool scrub $POOL"* ]]
    [[ $output != *pool_scrub_age* ]]
  done
}

@test "monitor: a scrub running is OK; one stopped, canceled or paused, or only a resilver since, is a WARNING" {
  for fixture in openzfs_running zfs_fuse_running; do
    scrub_on "$fixture" "$(date +%s)" >"$SANDBOX/zpool-status"
    run -0 "$CHECK" --cluster none
  done
  for fixture in zfs_fuse_stopped openzfs_canceled openzfs_paused; do
    scrub_on "$fixture" "$(date +%s)" >"$SANDBOX/zpool-status"
    run -1 "$CHECK" --cluster none
    [[ $output == "PITR WARNING - pool $POOL has no finished scrub: the last one did not complete (zpool status: scrub "* ]]
  done
  scrub_on openzfs_resilvered "$(date +%s)" >"$SANDBOX/zpool-status"
  run -1 "$CHECK" --cluster none
  [[ $output == "PITR WARNING - pool $POOL has no finished scrub since a resilver (zpool status: resilvered 1.21T "* ]]
}

@test "monitor: bytes a scrub repaired are a WARNING; device error counters are CRITICAL, in both formats" {
  scrub_on openzfs_repaired_only "$(date +%s)" >"$SANDBOX/zpool-status"
  run -1 "$CHECK" --cluster none
  [[ $output == "PITR WARNING - pool $POOL: the last scrub repaired 1.50M |"* ]]
  scrub_on openzfs_repaired "$(date +%s)" >"$SANDBOX/zpool-status"
  run -2 "$CHECK" --cluster none
  [[ $output == *"pool $POOL: ata-ST4000NM0033-9ZM170_Z1Z3RR03 has errors (READ 0 WRITE 0 CKSUM 12)"* ]]
  [[ $output == *"pool $POOL: the last scrub repaired 1.50M"* ]]
  # zfs-fuse: the bytes repaired follow the device's counters
  scrub_on zfs_fuse_repaired "$(date +%s)" >"$SANDBOX/zpool-status"
  run -2 "$CHECK" --cluster none
  [[ $output == *"pool $POOL: /tmp/rh/d2 has errors (READ 0 WRITE 0 CKSUM 309)"* ]]
  [[ $output == *"pool $POOL: the last scrub repaired 25.3M on /tmp/rh/d2"* ]]
}

@test "monitor: data errors a scrub could not repair are CRITICAL, naming the count" {
  scrub_on openzfs_data_errors "$(date +%s)" >"$SANDBOX/zpool-status"
  run -2 "$CHECK" --cluster none
  [[ $output == *"pool $POOL: 2 data errors, use '-v' for a list (zpool status -v $POOL names the files)"* ]]
  [[ $output == *"pool $POOL: the last scrub found 2 errors it could not repair"* ]]
  [[ $output == *"Z1Z3RR02 has errors (READ 0 WRITE 0 CKSUM 4)"* ]]
}

@test "monitor: zpool status that fails, or names a scan the check does not know, is UNKNOWN" {
  stub zpool 'if [[ $1 == status ]]; then echo "internal error: out of memory" >&2; exit 1; fi; printf "ONLINE\t12%%\n"'
  run -3 "$CHECK" --cluster none
  [[ $output == "PITR UNKNOWN - pool $POOL: zpool status failed: internal error: out of memory"* ]]
  pool_answers 'ONLINE\t12%%'
  openzfs_done | sed 's/scan: scrub repaired .*/scan: defragmented the pool/' >"$SANDBOX/zpool-status"
  run -3 "$CHECK" --cluster none
  [[ $output == *"zpool status names no scan the check knows: defragmented the pool"* ]]
}

@test "monitor installer: installs the bundle's scrub schedule (root, 0644) once, as cron reads it" {
  [[ -n $(query "[f['path'] for f in m['files'] if f['role'] == 'scrub-cron']") ]] || skip "the host spec's scrub.install_cron is false"
  fake_ownership
  stub visudo 'exit 0'
  installer=$(rebase_installer "$INSTALLER" CHECK="$SANDBOX/pitr-check" SUDOERS_FILE="$SANDBOX/sudoers" \
    SCRUB_CRON="$SANDBOX/cron.d/pitr-bundle-scrub")
  run -0 "$installer" --dry-run
  [ ! -e "$SANDBOX/cron.d/pitr-bundle-scrub" ]
  run -0 "$installer"
  cmp "$SANDBOX/cron.d/pitr-bundle-scrub" "$BUNDLE/host/scrub.cron"
  [ "$(stat -c '%U %a' "$SANDBOX/cron.d/pitr-bundle-scrub")" = "root 644" ]
  # the schedule line: the spec's five fields, as root, scrubbing this pool unless one runs
  grep -qxF "$(query "facts['scrub']['schedule']") root zpool status $POOL | grep -q 'in progress' || zpool scrub $POOL" \
    "$SANDBOX/cron.d/pitr-bundle-scrub"
  : >"$STUB_LOG"
  run -0 "$installer"
  [[ $output == *"$SANDBOX/cron.d/pitr-bundle-scrub: already installed"* ]]
  [ -z "$(calls '^install')" ]
  # a scrub schedule beside it that differs from SHA256SUMS is refused, nothing installed
  copy=$(bundle_copy)
  printf '* * * * * root zpool destroy -f %s\n' "$POOL" >>"$copy/host/scrub.cron"
  rm "$SANDBOX/cron.d/pitr-bundle-scrub"
  installer=$(rebase_installer "$copy/${INSTALLER#"$BUNDLE"/}" CHECK="$SANDBOX/other-check" \
    SUDOERS_FILE="$SANDBOX/sudoers" SCRUB_CRON="$SANDBOX/cron.d/pitr-bundle-scrub")
  run -3 "$installer"
  [[ $output == *"host/scrub.cron does not match the bundle's SHA256SUMS"* ]]
  [ ! -e "$SANDBOX/cron.d/pitr-bundle-scrub" ] && [ ! -e "$SANDBOX/other-check" ]
}

# --- WAL replay ---------------------------------------------------------------------------------

@test "monitor: an unfinished base backup (50-basebackup.sh's marker in PGDATA) is CRITICAL" {
  a_cluster_world
  touch "$PGDATA/$(query "facts['basebackup_incomplete_mark']")"
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR CRITICAL - $CLUSTER: the base backup in $PGDATA is unfinished ($(query "facts['basebackup_incomplete_mark']") there): not a copy of the primary yet; run 50-basebackup.sh again"* ]]
}

@test "monitor: a hot standby replaying what it receives is OK, with lag, delay and timeline in the perfdata" {
  HOT=1 a_cluster_world
  echo 't|f|1/2A000148|1/2A000148|5' >"$SANDBOX/psql.answer"
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *" ${CLUSTER}_replay_lag=0B;536870912;2147483648 ${CLUSTER}_replay_delay=0s;900;3600 "* ]]
  [[ $output == *" ${CLUSTER}_timeline=1"* ]]
  # the query ran as the cluster's OS user, with its own psql, over its socket
  calls "^runuser -u $(cluster_fact "['user']") -- env LD_LIBRARY_PATH=$SANDBOX/pghome/lib PGCONNECT_TIMEOUT=10 $SANDBOX/pghome/bin/psql .* -h $PGDATA -p $(cluster_fact "['port']") -U postgres" | grep -q .
}

@test "monitor: replay paused is CRITICAL, saying how to resume it" {
  HOT=1 a_cluster_world
  echo 't|t|0/3000148|0/3000148|5' >"$SANDBOX/psql.answer"
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR CRITICAL - $CLUSTER: WAL replay is paused (select pg_"*"_replay_resume() resumes it"* ]]
}

@test "monitor: a standby no longer in recovery (promoted) is CRITICAL" {
  HOT=1 a_cluster_world
  echo 'f||||' >"$SANDBOX/psql.answer"
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR CRITICAL - $CLUSTER: the standby is not in recovery (promoted?): it no longer follows the primary"* ]]
  # an answer that is not one (a NOTICE, nothing): UNKNOWN, never taken for a promotion
  echo 'NOTICE:  something else' >"$SANDBOX/psql.answer"
  run -3 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR UNKNOWN - $CLUSTER: the standby's answer is not understood: NOTICE:  something else"* ]]
}

@test "monitor: WAL received but not replayed warns, then goes critical; an old last transaction while it waits too" {
  HOT=1 a_cluster_world
  # 0x30000000 - 0x10000000 = 512 MiB behind: the default warning
  echo 't|f|0/30000000|0/10000000|60' >"$SANDBOX/psql.answer"
  run -1 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR WARNING - $CLUSTER: 512 MB of received WAL not replayed yet (received 0/30000000, replayed 0/10000000)"* ]]
  [[ $output == *" ${CLUSTER}_replay_delay=60s;900;3600"* ]]
  # across a 4 GB log: 2 GiB behind
  echo 't|f|1/40000000|0/C0000000|60' >"$SANDBOX/psql.answer"
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR CRITICAL - $CLUSTER: 2048 MB of received WAL not replayed yet"* ]]
  # a little behind, the last replayed transaction 2 hours old
  echo 't|f|0/3000200|0/3000148|7200' >"$SANDBOX/psql.answer"
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR CRITICAL - $CLUSTER: replay is 2 h behind: the last replayed transaction is that old while received WAL waits"* ]]
  # caught up: an idle primary's old last transaction is no delay
  echo 't|f|0/3000200|0/3000200|7200' >"$SANDBOX/psql.answer"
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *" ${CLUSTER}_replay_delay=0s;"* ]]
}

@test "monitor: a hot standby that streams nothing says the lag cannot be measured" {
  HOT=1 a_cluster_world
  echo 't|f||0/3000148|' >"$SANDBOX/psql.answer"
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR OK - $CLUSTER: replay at 0/3000148 (000000010000000000000001); the lag cannot be measured while nothing streams |"* ]]
}

@test "monitor: a hot standby that refuses SQL is a WARNING, measured from its files instead" {
  HOT=1 a_cluster_world
  STUB_TARGET=$SANDBOX/pghome/bin stub psql 'echo "psql: error: FATAL:  the database system is starting up" >&2; exit 2'
  run -1 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR WARNING - $CLUSTER: the standby does not answer SQL (psql: error: FATAL:  the database system is starting up): replay measured from its files only"* ]]
  [[ $output == *" ${CLUSTER}_replay_lag=0B;"* ]]
  [[ $output == *"$CLUSTER: no SQL answer: replay lag counted in whole WAL segments; whether replay is paused and the last replayed transaction's time cannot be measured"* ]]
}

@test "monitor: hot_standby off: pg_controldata's state, the startup process's segment, and what cannot be measured" {
  HOT=0 a_cluster_world
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR OK - $CLUSTER: hot_standby off: replay lag counted in whole WAL segments; whether replay is paused and the last replayed transaction's time cannot be measured |"* ]]
  calls '^psql' | grep -q . && false
  # segments received up to 0x19, the startup process replays 0x11 (64 MB each): 512 MB
  touch "$STANDBY_WAL/000000010000000000000019"
  echo "4243 postgres: startup process   recovering 000000020000000000000011" >"$SANDBOX/startup.title"
  run -1 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR WARNING - $CLUSTER: 512 MB of received WAL not replayed yet (newest WAL file 000000010000000000000019, replaying 000000020000000000000011 by the startup process)"* ]]
  [[ $output == *" ${CLUSTER}_timeline=2 "* ]]
  # no title (update_process_title off): the minimum recovery point 0/14000080, segment 5
  : >"$SANDBOX/startup.title"
  run -1 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *"1280 MB of received WAL not replayed yet (newest WAL file 000000010000000000000019, replaying 000000010000000000000005 by the minimum recovery point, which lags replay)"* ]]
}

@test "monitor: hot_standby off: a standby pg_controldata calls in production (promoted) is CRITICAL" {
  HOT=0 a_cluster_world
  controldata_90 "in production" >"$SANDBOX/controldata"
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR CRITICAL - $CLUSTER: the standby is not in archive recovery (pg_controldata: in production): promoted?"* ]]
}

@test "monitor: before 9.3 a WAL log holds one segment fewer: a lag across logs counts the segments there are" {
  HOT=0 a_cluster_world
  # 64 MB segments: 63 a log before 9.3 (0..3E), 64 from it; from 0/3E to 1/01
  touch "$STANDBY_WAL/000000010000000100000001"
  echo "4243 postgres: startup process   recovering 00000001000000000000003E" >"$SANDBOX/startup.title"
  sed -i "s/ 42949672\(95\|96\) / 4294967295 /" "$BATS_TEST_TMPDIR/check"
  run "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *" ${CLUSTER}_replay_lag=$((2 * 67108864))B;"* ]]
  sed -i "s/ 4294967295 / 4294967296 /" "$BATS_TEST_TMPDIR/check"
  run "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *" ${CLUSTER}_replay_lag=$((3 * 67108864))B;"* ]]
}

# --- the snapshot age follows the schedule ------------------------------------------------------

# zfs_replace_snapshots DATASET SNAPSHOT: SNAPSHOT (named as it likes) is DATASET's only one
zfs_replace_snapshots() {
  local old
  for old in $("$STUB_BIN/zfs" list -H -t snapshot -o name -d 1 -s creation "$1"); do
    "$STUB_BIN/zfs" destroy -d "$old"
  done
  "$STUB_BIN/zfs" snapshot "$2"
}

@test "monitor: the newest snapshot's age warns and goes critical at the thresholds the snapshot schedule gives" {
  a_cluster_world
  local warn crit dataset prefix
  warn=$(cluster_fact "['monitor_thresholds']['snapshot_warn_seconds']")
  crit=$(cluster_fact "['monitor_thresholds']['snapshot_crit_seconds']")
  dataset=$(cluster_fact "['dataset']") prefix=$(cluster_fact "['snapshots']['prefix']")
  # (the check takes the newest by creation: the one taken last, whatever its name says)
  zfs_replace_snapshots "$dataset" "$dataset@${prefix}$(date -u -d "@$(($(date +%s) - warn + 120))" +%Y%m%dT%H%M%SZ)"
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *" ${CLUSTER}_snapshot_age="*"s;$warn;$crit "* ]]
  zfs_replace_snapshots "$dataset" "$dataset@${prefix}$(date -u -d "@$(($(date +%s) - warn - 120))" +%Y%m%dT%H%M%SZ)"
  run -1 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR WARNING - $CLUSTER: newest snapshot is "*" old (WARNING from "* ]]
  zfs_replace_snapshots "$dataset" "$dataset@${prefix}$(date -u -d "@$(($(date +%s) - crit - 120))" +%Y%m%dT%H%M%SZ)"
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR CRITICAL - $CLUSTER: newest snapshot is "*" old (CRITICAL from "* ]]
}

@test "monitor: a scrub date that does not read as one, or pg_controldata failing, is UNKNOWN" {
  openzfs_done | sed 's/ on Sun Nov  1 03:00:14 2026$/ on Someday/' >"$SANDBOX/zpool-status"
  run -3 "$CHECK" --cluster none
  [[ $output == "PITR UNKNOWN - pool $POOL: the last scrub's date is unreadable: Someday"* ]]
  HOT=0 a_cluster_world
  STUB_TARGET=$SANDBOX/pghome/bin stub pg_controldata 'echo "pg_controldata: could not open file \"global/pg_control\" for reading: Permission denied" >&2; exit 1'
  run -3 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *"$CLUSTER: pg_controldata $PGDATA failed: pg_controldata: could not open file \"global/pg_control\" for reading: Permission denied"* ]]
}

@test "monitor: hot_standby off without the replayed segment or a WAL file: the lag is said to be unknown" {
  HOT=0 a_cluster_world
  : >"$SANDBOX/startup.title"
  controldata_90 "in archive recovery" | sed 's/^Minimum recovery ending location: .*/Minimum recovery ending location:     unknown/' >"$SANDBOX/controldata"
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR OK - $CLUSTER: hot_standby off: replay lag counted in whole WAL segments; whether replay is paused and the last replayed transaction's time cannot be measured; $CLUSTER: replay lag unknown (replaying ?, newest WAL file 000000010000000000000001) |"* ]]
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

# --- timeline and the node streamed from ----------------------------------------------------------

# replaying TIMELINE: the startup process's title names a segment of TIMELINE
replaying() {
  printf '4243 postgres: startup process   recovering %08X0000000000000003\n' "$1" >"$SANDBOX/startup.title"
}

@test "monitor: the first run records the timeline without a warning; a change warns until --ack-timeline" {
  HOT=1 a_cluster_world
  replaying 1
  [ ! -e "$SANDBOX/state/timeline.state" ]
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [ "$(cat "$SANDBOX/state/timeline.state")" = timeline=1 ]
  [[ $output != *timeline\ * ]]
  # a failover: timeline 2, from the promoted partner
  replaying 2
  echo 't|f|0/5000148|0/5000148|5|127.0.0.2:5432' >"$SANDBOX/psql.answer"
  run -1 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR WARNING - $CLUSTER: timeline changed from 1 to 2 (a failover or promotion of the primary's side), streaming from 127.0.0.2:5432: check that it is the new primary, then check --ack-timeline $CLUSTER"* ]]
  run -1 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  # --dry-run says what it would record and records nothing
  run -0 "$BATS_TEST_TMPDIR/check" --ack-timeline "$CLUSTER" --dry-run
  [[ $output == "PITR OK - $CLUSTER: dry-run: would acknowledge timeline 2 (recorded: 1) in $SANDBOX/state/timeline.state" ]]
  [ "$(cat "$SANDBOX/state/timeline.state")" = timeline=1 ]
  run -0 "$BATS_TEST_TMPDIR/check" --ack-timeline "$CLUSTER"
  [[ $output == "PITR OK - $CLUSTER: timeline 2 acknowledged (was 1), streaming from 127.0.0.2:5432" ]]
  [ "$(cat "$SANDBOX/state/timeline.state")" = timeline=2 ]
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output != *"timeline changed"* ]]
}

@test "monitor: --ack-timeline refuses an unknown timeline and an unknown cluster, writing nothing" {
  HOT=1 a_cluster_world
  : >"$SANDBOX/startup.title"
  rm -f "$STANDBY_WAL"/*
  run -3 "$BATS_TEST_TMPDIR/check" --ack-timeline "$CLUSTER"
  [[ $output == "PITR UNKNOWN - $CLUSTER: the timeline the standby replays is unknown"* ]]
  [ ! -e "$SANDBOX/state/timeline.state" ]
  run -3 "$BATS_TEST_TMPDIR/check" --ack-timeline no_such_cluster
  [[ $output == *"PITR UNKNOWN - --ack-timeline: no cluster named no_such_cluster" ]]
}

@test "monitor: a state folder it cannot write is a note, never a failed check" {
  HOT=1 a_cluster_world
  replaying 1
  touch "$SANDBOX/state"
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == *"$CLUSTER: cannot record timeline 1 in $SANDBOX/state/timeline.state: a timeline change will not be reported"* ]]
}

@test "monitor: with an HA partner in the conninfo, a note names the node the standby streams from" {
  FOLLOWS=1 HOT=1 a_cluster_world
  replaying 3
  echo 't|f|0/5000148|0/5000148|5|127.0.0.2:5432' >"$SANDBOX/psql.answer"
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR OK - $CLUSTER: streams from 127.0.0.2:5432 on timeline 3 |"* ]]
  # nothing streams: no node to name
  echo 't|f|0/5000148|0/5000148|5|' >"$SANDBOX/psql.answer"
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output != *"streams from"* ]]
}

@test "monitor: a standby that replayed past the new timeline's fork is CRITICAL until it streams again" {
  HOT=1 a_cluster_world
  mkdir -p "$SANDBOX/standby-log"
  printf '%s\n' "2026-12-07 04:00:00 UTC [1] LOG:  started streaming WAL from primary at 0/3000000 on timeline 1" \
    "2026-12-07 04:10:00 UTC [1] LOG:  new timeline 2 forked off current database system timeline 1 before current recovery point 0/50000A0" \
    >"$SANDBOX/standby-log/postgresql-1.log"
  touch -d '1 hour ago' "$SANDBOX/standby-log/postgresql-1.log"
  # an older file's word does not count: the newest file's does
  printf '%s\n' "2026-12-07 04:11:00 UTC [1] LOG:  new timeline 2 forked off current database system timeline 1 before current recovery point 0/50000A0" \
    >"$SANDBOX/standby-log/postgresql-2.log"
  run -2 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
  [[ $output == "PITR CRITICAL - $CLUSTER: the standby replayed past the point where the new primary's timeline forked off (new timeline 2 forked off current database system timeline 1 before current recovery point 0/50000A0): it cannot follow; "* ]]
  hint=$(query "[e for e in facts['clusters'] if e['name'] == '$CLUSTER'][0]['postgres_major']")
  if [[ $hint == 9.[0-4] ]]; then
    [[ $output == *"take a new base backup (50-basebackup.sh --force): PostgreSQL $hint has no pg_rewind (from 9.5)"* ]]
  else
    [[ $output == *"pg_rewind from the new primary"* ]]
  fi
  echo "2026-12-07 04:20:00 UTC [1] LOG:  started streaming WAL from primary at 0/5000000 on timeline 2" >>"$SANDBOX/standby-log/postgresql-2.log"
  run -0 "$BATS_TEST_TMPDIR/check" --cluster "$CLUSTER"
}
