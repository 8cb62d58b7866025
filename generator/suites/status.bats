#!/usr/bin/env bats
# The status report (role "status": host/status.sh, installed as pitr-status, and its installer),
# with the fake ZFS and a stub standby. Its range is proven against a real restore on zfs-fuse
# and PostgreSQL 16 (tests/test_pitr_zfs_pg.py). On a replica host (no cluster of its own) the
# report covers the datasets it copies: their last pull and their snapshots here.

load test_helper
load replica_world

# the world every test starts from: on a backup host the first cluster's (cluster_world), on a
# replica host the copies' (copy_world)
make_world() {
  setup_stubs
  POOL=$(query "facts['pool']['name']")
  NOW=$(date -u +%s)
  make_pool
  STATUS=$(script_of status)
  CLUSTER="" COPY=""
  if (($(query "len(facts['clusters'])") > 0)); then
    cluster_world
  fi
  if grep -q '^readonly REPLICA_STATE=' "$STATUS"; then
    copy_world
  fi
}

# needs_clusters: the cluster tests need a cluster of the host's own (a replica has none)
needs_clusters() {
  [[ -n $CLUSTER ]] || skip "no cluster of this host's own (a replica host)"
}

# needs_copies: the copy tests need a replica host (replica_of in its host spec)
needs_copies() {
  [[ -n $COPY ]] || skip "no copy of another host's datasets here (no replica_of in the host spec)"
}

# cluster_world: the first cluster with three snapshots (3 h, 2 h and 1 h ago, REDO points
# ...02, ...04, ...06), segments ...01 to ...08 archived (the newest a minute ago), a standby
# that replayed to the end of ...08, a drill that succeeded yesterday
cluster_world() {
  CLUSTER=$(cluster_fact "['name']")
  DATASET=$(cluster_fact "['dataset']")
  PREFIX=$(cluster_fact "['snapshots']['prefix']")
  ARCHIVE=$SANDBOX/arch PGDATA=$SANDBOX/pgdata PGHOME=$SANDBOX/pghome STATE=$SANDBOX/drill.state
  "$STUB_BIN/zfs" create -p -o mountpoint=/x "$DATASET"
  local hours redo
  for hours in 3 2 1; do
    redo=$(printf '0000000100000000%08X' $((8 - 2 * hours)))
    set_clock "@$((NOW - hours * 3600))"
    "$STUB_BIN/zfs" snapshot -o "pitr-bundle:redo-wal=$redo" \
      "$DATASET@$PREFIX$(date -u -d "@$((NOW - hours * 3600))" +%Y%m%dT%H%M%SZ)"
  done
  rm "$STUB_BIN/date"
  SNAP_OLDEST=$((NOW - 3 * 3600))
  local n day
  day=$(date -u +%F)
  mkdir -p "$ARCHIVE/$day" "$PGDATA" "$PGHOME/bin"
  for n in 1 2 3 4 5 6 7 8; do
    truncate -s 16M "$ARCHIVE/$day/$(printf '0000000100000000%08X' "$n")"
    touch -d "@$((NOW - 60 - (8 - n) * 300))" "$ARCHIVE/$day/$(printf '0000000100000000%08X' "$n")"
  done
  NEWEST_WAL=$((NOW - 60))
  echo 4242 >"$PGDATA/postmaster.pid"
  # the standby: in recovery, received and replayed to the end of ...08, its last replayed
  # transaction 90 s ago
  XACT=$((NOW - 90))
  echo "t|0/9000000|0/9000000|$XACT.123456" >"$SANDBOX/psql.answer"
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  STUB_TARGET=$PGHOME/bin stub psql 'cat "$SANDBOX/psql.answer"'
  stub runuser 'while (($#)) && [[ $1 != -- ]]; do shift; done; shift; exec "$@"'
  printf 'when=x\nwhen_epoch=%s\nresult=ok\nlast_ok_epoch=%s\nerror=\n' "$((NOW - 86400))" "$((NOW - 86400))" >"$STATE"
  # the report as installed, its cluster's folders in the sandbox
  local archive pgdata pghome state
  archive=$(cluster_fact "['paths']['archive']")
  pgdata=$(cluster_fact "['paths']['pgdata']")
  pghome=$(cluster_fact "['paths']['pghome']")
  state=$(cluster_fact "['drill']['state_file']")
  sed -e "/^    collect $CLUSTER /{s| $archive | $ARCHIVE |;s| $pghome | $PGHOME |;s| $pgdata | $PGDATA |;s| $state\$| $STATE|}" \
    "$STATUS" >"$PITR_WORLD/status"
  chmod +x "$PITR_WORLD/status"
  REPORT=$PITR_WORLD/status
  # a standby that answers SQL (the stub answers whatever is asked; the example's 9.0 cluster
  # has hot_standby off, where the report asks nothing)
  replay_question "select 'the stub answers'"
  # drill.enabled false: the report says "off" (the fact's state file stays, unread)
  DRILL=ok DRILL_AGE=" 24 h ago"
  if [[ $(cluster_fact "['drill']['enabled']") != True ]]; then DRILL=off DRILL_AGE=""; fi
}

# replay_question SQL: the report's replay question for the cluster ("": none, hot_standby off)
replay_question() {
  "$PYTHON" -S - "$REPORT" "$CLUSTER" "$1" <<'PY'
import re, shlex, sys
path, cluster, sql = sys.argv[1:]
lines = open(path).read().split("\n")
# a shell word as the bundle's quoting (and shlex.quote) writes it: pieces of $'...' (with \'
# inside), '...', "..." and bare characters, with no blank between them
word = re.compile(r"""(?:\$'(?:[^'\\]|\\.)*'|'[^']*'|"(?:[^"\\]|\\.)*"|[^\s'"$]+|\$)+""")
for i, line in enumerate(lines):
    if line.startswith(f"    collect {cluster} "):
        args = word.findall(line)
        args[11] = shlex.quote(sql)
        lines[i] = "    " + " ".join(args)
open(path, "w").write("\n".join(lines))
PY
}

setup_file() { world_setup_file make_world; }
setup() { world_reset; }

# json_in LIST NAME EXPR: EXPR of the report's JSON (bound to j: the object, c: the entry of
# j[LIST] named NAME), parsed by Python's json module from $output
json_in() {
  "$PYTHON" -S -c '
import json, sys
j = json.loads(sys.argv[1])
c = next(x for x in j[sys.argv[2]] if x["name"] == sys.argv[3])
v = eval(sys.argv[4])
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)' "$output" "$1" "$2" "$3"
}

# json EXPR: EXPR of the report's JSON (j: the object, c: this cluster's entry)
json() {
  json_in clusters "$CLUSTER" "$1"
}

@test "status: one summary line for the cluster, the range from the oldest snapshot to the standby's last replayed transaction" {
  needs_clusters
  run -0 "$REPORT" --cluster "$CLUSTER"
  [ "${#lines[@]}" -eq 1 ]
  oldest=$(date -u -d "@$((SNAP_OLDEST + 1))" '+%F %T UTC')
  newest=$(date -u -d "@$XACT" '+%F %T UTC')
  [[ $output == "$CLUSTER: restorable $oldest to $newest; snapshots 3 (newest 60 min ago); archive 128.0 MiB, newest WAL 1 min ago; replay lag 0 B; drill $DRILL$DRILL_AGE" ]]
}

@test "status: every cluster gets its line; one it cannot read is named and makes exit 1" {
  needs_clusters
  run -1 "$REPORT"
  for cluster in $(query "[c['name'] for c in facts['clusters']]"); do
    grep -q "^$cluster: restorable" <<<"$output"
  done
  # the others' folders are not in the sandbox: each named as a problem
  if (($(query "len(facts['clusters'])") > 1)); then
    [[ $output == *"  problem: the archive folder "*" is missing: no replay can read WAL"* ]]
  fi
}

@test "status: --json is one object Python's json reads, numbers as numbers, times as ISO 8601 UTC and epoch" {
  needs_clusters
  run -0 "$REPORT" --json --cluster "$CLUSTER"
  [ "$(json 'c["restorable"]["oldest"]["epoch"]')" -eq $((SNAP_OLDEST + 1)) ]
  [ "$(json 'c["restorable"]["oldest"]["time"]')" = "$(date -u -d "@$((SNAP_OLDEST + 1))" +%Y-%m-%dT%H:%M:%SZ)" ]
  [ "$(json 'c["restorable"]["newest"]["epoch"]')" -eq "$XACT" ]
  [ "$(json 'c["restorable"]["newest_source"]')" = standby ]
  [ "$(json 'c["restorable"]["newest_exact"]')" = true ]
  [ "$(json 'c["restorable"]["oldest_snapshot"].split("@")[0]')" = "$DATASET" ]
  [ "$(json 'c["restorable"]["gap"]')" = null ]
  [ "$(json 'c["snapshots"]["count"]')" -eq 3 ]
  [ "$(json 'c["archive"]["bytes"]')" -eq $((8 * 16777216)) ]
  [ "$(json 'c["archive"]["files"]')" -eq 8 ]
  [ "$(json 'c["archive"]["newest_wal"]["epoch"]')" -eq "$NEWEST_WAL" ]
  [ "$(json 'c["archive"]["newest_wal_file"]')" = 000000010000000000000008 ]
  [[ $(json 'c["archive"]["continuity"]') == "archive continuous from 000000010000000000000002 to 000000010000000000000008"* ]]
  [ "$(json 'c["replay"]["lag_bytes"]')" -eq 0 ]
  [ "$(json 'c["replay"]["replay_lsn"]')" = 0/9000000 ]
  [ "$(json 'c["drill"]["result"]')" = "$DRILL" ]
  [ "$(json 'c["problems"] + c["unavailable"]')" = "[]" ]
  [ "$(json 'c["healthy"] and type(c["snapshots"]["count"]) is int')" = true ]
  [ "$(json 'j["host"]')" = "$(query "m['host']")" ]
}

@test "status: --json escapes what it quotes (a drill error with quotes, backslashes, a tab)" {
  needs_clusters
  [[ $DRILL == ok ]] || skip "the cluster's drill is off"
  printf 'when_epoch=1\nresult=failed\nerror=say "no" \\ then\tstop\x01\n' >"$STATE"
  run -1 "$REPORT" --json --cluster "$CLUSTER"
  [ "$(json 'c["drill"]["error"]')" = "$(printf 'say "no" \\ then\tstop\x01')" ]
  [[ $(json 'c["problems"][0]') == "the last restore drill failed: say"* ]]
}

@test "status: the standby replaying past the archive's end: the newest archived file's time, said to be an upper bound" {
  needs_clusters
  echo "t|0/A000100|0/A000000|$((NOW - 5)).5" >"$SANDBOX/psql.answer"
  run -0 "$REPORT" --json --cluster "$CLUSTER"
  [ "$(json 'c["restorable"]["newest"]["epoch"]')" -eq "$NEWEST_WAL" ]
  [ "$(json 'c["restorable"]["newest_source"]')" = archive-file ]
  [ "$(json 'c["restorable"]["newest_exact"]')" = false ]
  [ "$(json 'c["replay"]["lag_bytes"]')" -eq 256 ]
  run -0 "$REPORT" --cluster "$CLUSTER"
  [[ $output == *" to $(date -u -d "@$NEWEST_WAL" '+%F %T UTC') at most;"* ]]
}

@test "status: the oldest restorable snapshot is the one restore.sh --list names" {
  needs_clusters
  stub pg_ctl 'exit 3'
  list=$(rebase "$(script_of restore "$CLUSTER")" ARCHIVE="$ARCHIVE")
  run -0 "$list" --list
  from=$(sed -n 's/^Restorable with --target-time: after .* (snapshot \([^)]*\)).*/\1/p' <<<"$output")
  [ -n "$from" ]
  run -0 "$REPORT" --json --cluster "$CLUSTER"
  [ "$(json 'c["restorable"]["oldest_snapshot"]')" = "$DATASET@$from" ]
  # the WAL retention deleted the oldest snapshot's WAL: both move to the next one
  "$STUB_BIN/zfs" set pitr-bundle:wal-kept-from=000000010000000000000003 "$DATASET"
  run -0 "$list" --list
  from=$(sed -n 's/^Restorable with --target-time: after .* (snapshot \([^)]*\)).*/\1/p' <<<"$output")
  run -0 "$REPORT" --json --cluster "$CLUSTER"
  [ "$(json 'c["restorable"]["oldest_snapshot"]')" = "$DATASET@$from" ]
  [ "$(json 'c["restorable"]["oldest"]["epoch"]')" -eq $((SNAP_OLDEST + 3600 + 1)) ]
}

@test "status: a gap in the archive: the range starts at the first snapshot after it, the gap named" {
  needs_clusters
  rm "$ARCHIVE"/*/000000010000000000000003
  run -1 "$REPORT" --json --cluster "$CLUSTER"
  [ "$(json 'c["restorable"]["oldest"]["epoch"]')" -eq $((SNAP_OLDEST + 3600 + 1)) ]
  [ "$(json 'c["restorable"]["newest"]["epoch"]')" -eq "$XACT" ]
  [ "$(json 'c["restorable"]["gap"]["first_missing_wal"]')" = 000000010000000000000003 ]
  [ "$(json 'c["restorable"]["gap"]["missing_segments"]')" -eq 1 ]
  [ "$(json 'c["restorable"]["gap"]["last_wal_before"]')" = 000000010000000000000002 ]
  [ "$(json 'c["restorable"]["gap"]["next_wal_after"]')" = 000000010000000000000004 ]
  [[ $(json 'c["problems"][0]') == "archive gap: 000000010000000000000003 missing; 1 segment(s) missing"* ]]
  run -1 "$REPORT" --prometheus --dry-run --cluster "$CLUSTER"
  [[ $output == *"pitr_bundle_archive_missing_segments{cluster=\"$CLUSTER\"} 1"* ]]
  [[ $output == *"pitr_bundle_status_healthy{cluster=\"$CLUSTER\"} 0"* ]]
}

@test "status: a gap after every snapshot's REDO point: nothing restorable, said so" {
  needs_clusters
  rm "$ARCHIVE"/*/000000010000000000000007
  run -1 "$REPORT" --json --cluster "$CLUSTER"
  [ "$(json 'c["restorable"]["oldest"]')" = null ]
  [ "$(json 'c["restorable"]["newest"]')" = null ]
  [[ $(json '"\n".join(c["problems"])') == *"no snapshot starts after the gap: nothing restorable by --target-time up to now; take a new base backup"* ]]
  run -1 "$REPORT" --cluster "$CLUSTER"
  [[ ${lines[0]} == "$CLUSTER: restorable: nothing known; snapshots 3"* ]]
}

@test "status: a cluster with no snapshot yet: nothing restorable, exit 1, the other figures there" {
  needs_clusters
  for snap in $("$STUB_BIN/zfs" list -H -t snapshot -o name -d 1 -s creation "$DATASET"); do
    "$STUB_BIN/zfs" destroy -d "$snap"
  done
  run -1 "$REPORT" --json --cluster "$CLUSTER"
  [ "$(json 'c["snapshots"]["count"]')" -eq 0 ]
  [ "$(json 'c["snapshots"]["newest"]')" = null ]
  [ "$(json 'c["restorable"]["oldest"]')" = null ]
  [ "$(json 'c["archive"]["files"]')" -eq 8 ]
  [[ $(json 'c["problems"][0]') == "no snapshot of $DATASET yet: nothing to restore from" ]]
}

@test "status: without root the standby's figures are unavailable, the rest is reported" {
  needs_clusters
  stub id 'if [[ $1 == -un ]]; then echo nagios; else echo 1000; fi'
  run -1 "$REPORT" --json --cluster "$CLUSTER"
  [ "$(json 'c["replay"]["lag_bytes"]')" = null ]
  [[ $(json 'c["unavailable"][0]') == "replay: the standby answers root only"* ]]
  [ "$(json 'c["snapshots"]["count"]')" -eq 3 ]
  [ "$(json 'c["drill"]["result"]')" = "$DRILL" ]
  # the range still starts at the oldest snapshot; its end is the archive's, as an upper bound
  [ "$(json 'c["restorable"]["oldest"]["epoch"]')" -eq $((SNAP_OLDEST + 1)) ]
  [ "$(json 'c["restorable"]["newest_source"]')" = archive-file ]
  [ -z "$(calls '^runuser')" ]
}

@test "status: an archive it may not read is unavailable, not missing" {
  needs_clusters
  stub id 'if [[ $1 == -un ]]; then echo nagios; else echo 1000; fi'
  mv "$ARCHIVE" "$SANDBOX/elsewhere"
  sed -i "s| $ARCHIVE | $SANDBOX/locked/arch |" "$REPORT"
  mkdir -m 000 "$SANDBOX/locked"
  run -1 "$REPORT" --json --cluster "$CLUSTER"
  if [[ $(/usr/bin/id -u) == 0 ]]; then
    # root reads any folder: the stub id says otherwise, the kernel does not
    [[ $(json '"\n".join(c["problems"])') == *"the archive folder $SANDBOX/locked/arch is missing"* ]]
  else
    [[ $(json '"\n".join(c["unavailable"])') == *"archive: $SANDBOX/locked/arch is not readable by nagios"* ]]
  fi
  [ "$(json 'c["archive"]["bytes"]')" = null ]
  [ "$(json 'c["snapshots"]["count"]')" -eq 3 ]
}

@test "status: a failing zfs: snapshots unavailable and named, the archive still reported" {
  needs_clusters
  export FAKE_FAIL='zfs list*'
  run -1 "$REPORT" --cluster "$CLUSTER"
  [[ ${lines[0]} == "$CLUSTER: restorable: nothing known; snapshots ?; archive 128.0 MiB"* ]]
  [[ $output == *"  unavailable: snapshots: zfs list of $DATASET failed: zfs: injected failure"* ]]
  run -1 "$REPORT" --json --cluster "$CLUSTER"
  [ "$(json 'c["archive"]["files"]')" -eq 8 ]
  [ "$(json 'c["snapshots"]["count"]')" = null ]
}

@test "status: the standby down is a problem; the range ends at the archive's newest file" {
  needs_clusters
  rm "$PGDATA/postmaster.pid"
  run -1 "$REPORT" --json --cluster "$CLUSTER"
  [[ $(json 'c["problems"][0]') == "standby not running (no $PGDATA/postmaster.pid)" ]]
  [ "$(json 'c["restorable"]["newest_source"]')" = archive-file ]
}

# prom_check FILE: every line of FILE a # HELP / # TYPE line or a sample of the text
# exposition format (metric name, labels, a number), each family's TYPE before its samples
prom_check() {
  "$PYTHON" -S - "$1" <<'PY'
import re, sys
name = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
label = r'[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*"'
sample = re.compile(rf"^({name})(\{{(?:{label}(?:,{label})*)?\}})? (-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?|NaN|[+-]Inf)$")
typed, helped, seen = {}, set(), set()
text = open(sys.argv[1]).read()
assert text.endswith("\n"), "no final newline"
for line in text.splitlines():
    if line.startswith("# HELP "):
        family = line.split()[2]
        assert re.fullmatch(name, family) and family not in helped, line
        helped.add(family)
    elif line.startswith("# TYPE "):
        _, _, family, kind = line.split(" ", 3)
        assert kind in ("gauge", "counter", "untyped") and family not in typed, line
        typed[family] = kind
    else:
        m = sample.match(line)
        assert m, f"not a sample: {line!r}"
        assert m.group(1) in typed, f"no TYPE before {line!r}"
        assert (m.group(1), m.group(2)) not in seen, f"twice: {line!r}"
        seen.add((m.group(1), m.group(2)))
print(len(seen))
PY
}

@test "status: --prometheus writes the pitr_bundle_* metrics in the exposition format, atomically, readable by node_exporter" {
  needs_clusters
  mkdir -p "$SANDBOX/prom"
  echo "old" >"$SANDBOX/prom/pitr_bundle.prom"
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub mv 'cp "${@: -2:1}" "$SANDBOX/renamed"; exec /bin/mv "$@"'
  run -0 "$REPORT" --prometheus --prometheus-dir "$SANDBOX/prom" --cluster "$CLUSTER"
  [ -z "$output" ]
  # written whole beside it under a name node_exporter skips, then renamed over it
  [[ $(calls '^mv ') =~ ^mv\ -f\ --\ $SANDBOX/prom/\.pitr_bundle\.prom\.[A-Za-z0-9]{6}\ $SANDBOX/prom/pitr_bundle\.prom$ ]]
  cmp "$SANDBOX/renamed" "$SANDBOX/prom/pitr_bundle.prom"
  [ "$(ls -A "$SANDBOX/prom")" = pitr_bundle.prom ]
  [ "$(stat -c %a "$SANDBOX/prom/pitr_bundle.prom")" = 644 ]
  prom_check "$SANDBOX/prom/pitr_bundle.prom"
  file=$(<"$SANDBOX/prom/pitr_bundle.prom")
  for sample in "status_scrape_success{cluster=\"$CLUSTER\"} 1" \
    "restorable_oldest_timestamp_seconds{cluster=\"$CLUSTER\"} $((SNAP_OLDEST + 1))" \
    "restorable_newest_timestamp_seconds{cluster=\"$CLUSTER\"} $XACT" \
    "restorable_newest_exact{cluster=\"$CLUSTER\"} 1" "snapshots{cluster=\"$CLUSTER\"} 3" \
    "snapshot_newest_timestamp_seconds{cluster=\"$CLUSTER\"} $((SNAP_OLDEST + 7200))" \
    "archive_bytes{cluster=\"$CLUSTER\"} $((8 * 16777216))" \
    "archive_newest_wal_timestamp_seconds{cluster=\"$CLUSTER\"} $NEWEST_WAL" \
    "replay_lag_bytes{cluster=\"$CLUSTER\"} 0" "archive_missing_segments{cluster=\"$CLUSTER\"} 0"; do
    grep -qxF "pitr_bundle_$sample" <<<"$file"
  done
  if [[ $DRILL == ok ]]; then
    grep -qxF "pitr_bundle_drill_last_success{cluster=\"$CLUSTER\"} 1" <<<"$file"
    grep -qxF "pitr_bundle_drill_last_timestamp_seconds{cluster=\"$CLUSTER\"} $((NOW - 86400))" <<<"$file"
  fi
  # a figure it could not read has no sample, and scrape_success says so
  stub id 'if [[ $1 == -un ]]; then echo nagios; else echo 1000; fi'
  run -1 "$REPORT" --prometheus --prometheus-dir "$SANDBOX/prom" --cluster "$CLUSTER"
  prom_check "$SANDBOX/prom/pitr_bundle.prom"
  grep -qxF "pitr_bundle_status_scrape_success{cluster=\"$CLUSTER\"} 0" "$SANDBOX/prom/pitr_bundle.prom"
  ! grep -q '^pitr_bundle_replay_lag_bytes{' "$SANDBOX/prom/pitr_bundle.prom" || false
}

@test "status: --prometheus into a folder that is not there fails and leaves nothing; without a folder it is a usage error" {
  needs_clusters
  run -1 "$REPORT" --prometheus --prometheus-dir "$SANDBOX/none" --cluster "$CLUSTER"
  [[ $output == *"the Prometheus textfile folder $SANDBOX/none does not exist"* ]]
  [ ! -e "$SANDBOX/none" ]
  if [[ -z $(query "facts['monitor']['prometheus_textfile_dir']") ]]; then
    run -2 "$REPORT" --prometheus
    [[ $output == *"sets no monitor.prometheus_textfile_dir"* ]]
  fi
  run -2 "$REPORT" --bogus
}

@test "status: read-only, it changes nothing in ZFS" {
  [[ -n $CLUSTER$COPY ]] || skip "no cluster and no copy on this host: nothing to read"
  : >"$STUB_LOG"
  run "$REPORT" --json
  calls '^zfs list' | grep -q .
  [ -z "$(calls '^zfs (create|set|inherit|snapshot|destroy|clone|rename)|^zpool (create|scrub)')" ]
}

@test "status installer: installs the bundle's own status.sh byte for byte (root, 0755), once" {
  fake_ownership
  installer=$(rebase_installer "$BUNDLE/$(query "[f['path'] for f in m['files'] if f['role'] == 'status' and f['order'] is not None][0]")" \
    STATUS="$SANDBOX/pitr-status" "?STATUS_CRON=$SANDBOX/cron.d/pitr-bundle-status")
  run -0 "$installer" --dry-run
  [[ $output == *"would install the bundle's host/status.sh as $SANDBOX/pitr-status"* ]]
  [ ! -e "$SANDBOX/pitr-status" ]
  run -0 "$installer"
  cmp "$SANDBOX/pitr-status" "$STATUS"
  [ "$(stat -c '%U %a' "$SANDBOX/pitr-status")" = "root 755" ]
  if [[ -n $(query "facts['monitor']['prometheus_textfile_dir']") ]]; then
    cmp "$SANDBOX/cron.d/pitr-bundle-status" "$BUNDLE/host/status.cron"
    grep -q " root /usr/local/sbin/pitr-status --prometheus" "$SANDBOX/cron.d/pitr-bundle-status"
  fi
  : >"$STUB_LOG"
  run -0 "$installer"
  [[ $output == *"$SANDBOX/pitr-status: already installed"* ]]
  [ -z "$(calls '^install')" ]
  # an altered copy beside it is refused
  copy=$(bundle_copy)
  installer=$(rebase_installer "$copy/host/81-install-status.sh" STATUS="$SANDBOX/other" \
    "?STATUS_CRON=$SANDBOX/cron.d/other")
  printf '\n' >>"$copy/host/status.sh"
  run -3 "$installer"
  [[ $output == *"host/status.sh does not match the bundle's SHA256SUMS"* ]]
  [ ! -e "$SANDBOX/other" ]
}

# fake_waldump DIGITS...: the cluster's pg_waldump, printing for segment ...<DIGITS> a commit
# line as PostgreSQL 18's prints it (TZ=UTC) at the epoch in $SANDBOX/commit-<DIGITS>, and
# nothing for the others (a segment of checkpoints and switches only)
fake_waldump() {
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  STUB_TARGET=$PGHOME/bin stub pg_waldump 'f=${1##*/}
[[ $TZ == UTC ]] || { echo "pg_waldump: not run in UTC" >&2; exit 9; }
if [[ -f $SANDBOX/commit-${f:16} ]]; then
  printf "rmgr: Heap        len (rec/tot):     59/    59, tx:        751, lsn: 0/%s000028, prev 0/%s000000, desc: INSERT off: 2, flags: 0x00\n" "${f:22}" "${f:22}"
  printf "rmgr: Transaction len (rec/tot):     34/    34, tx:        751, lsn: 0/%s000060, prev 0/%s000028, desc: COMMIT %s\n" "${f:22}" "${f:22}" "$(date -u -d "@$(<"$SANDBOX/commit-${f:16}")" "+%F %T.279254 UTC")"
fi
echo "pg_waldump: error: error in WAL record at 0/${f:22}0001D8: invalid record length at 0/${f:22}000210: expected at least 24, got 0" >&2
exit 1'
}

@test "status: with the cluster's pg_waldump, the last transaction in the archived WAL is the newest, exact, whatever the standby replays" {
  needs_clusters
  # the standby replays past the archive; ...08 holds no transaction, ...07 one 7 minutes ago
  echo "t|0/A000100|0/A000000|$((NOW - 5)).5" >"$SANDBOX/psql.answer"
  echo $((NOW - 420)) >"$SANDBOX/commit-00000007"
  fake_waldump
  run -0 "$REPORT" --json --cluster "$CLUSTER"
  [ "$(json 'c["restorable"]["newest"]["epoch"]')" -eq $((NOW - 420)) ]
  [ "$(json 'c["restorable"]["newest_source"]')" = wal ]
  [ "$(json 'c["restorable"]["newest_exact"]')" = true ]
  calls "^pg_waldump $ARCHIVE/.*/000000010000000000000008$" | grep -q .
  calls "^pg_waldump $ARCHIVE/.*/000000010000000000000007$" | grep -q .
  # no transaction in the newest four segments: the standby's or the archive's time, as without it
  rm "$SANDBOX/commit-00000007"
  run -0 "$REPORT" --json --cluster "$CLUSTER"
  [ "$(json 'c["restorable"]["newest_source"]')" = archive-file ]
  [ "$(calls '^pg_waldump' | wc -l)" -eq 6 ]
}

@test "status: a standby with hot_standby off answers no SQL: a note, not a figure missing" {
  needs_clusters
  # the collect line as a cluster with hot_standby off gets it: no replay question
  replay_question ""
  run -0 "$REPORT" --json --cluster "$CLUSTER"
  [[ $(json 'c["notes"][0]') == "replay: hot_standby is off, the standby answers no SQL"* ]]
  [ "$(json 'c["replay"]["lag_bytes"]')" = null ]
  [ "$(json 'c["restorable"]["newest_source"]')" = archive-file ]
  [ -z "$(calls '^runuser')" ]
  run -0 "$REPORT" --cluster "$CLUSTER"
  [[ ${lines[1]} == "  note: replay: hot_standby is off"* ]]
}

# --- a replica host: the datasets it copies ----------------------------------------------------

# copy_lines SCRIPT: "cluster<TAB>copy<TAB>kind<TAB>source dataset<TAB>prefix" of each dataset
# the report collects (its collect_copy lines), in its order
copy_lines() {
  local line
  while IFS= read -r line; do
    eval "set -- ${line#*collect_copy }"
    printf '%s\t%s\t%s\t%s\t%s\n' "$@"
  done < <(grep '^    collect_copy ' "$1")
}

# short EPOCH: a time as the report's text prints it
short() {
  date -u -d "@$1" '+%F %T UTC'
}

# copy_world: each copied dataset on this host with a foreign snapshot and two of ours (2 h
# and 1 h ago), and the state file of a pull a minute ago that received the newest one; COPY
# (the first copy), its cluster, kind and source dataset; COPY_LINES (all of them)
copy_world() {
  REPORT=$(rebase "$STATUS" REPLICA_STATE="$SANDBOX/replica.state")
  REPLICA_STATE=$SANDBOX/replica.state
  COPY_SOURCE=$(constant "$STATUS" COPY_SOURCE)
  COPY_LINES=$(copy_lines "$STATUS")
  IFS=$'\t' read -r COPY_CLUSTER COPY COPY_KIND COPY_SOURCE_DS COPY_PREFIX <<<"$COPY_LINES"
  SNAP_OLD=$((NOW - 7200)) SNAP_NEW=$((NOW - 3600)) PULLED=$((NOW - 60))
  local cluster copy kind source prefix
  printf '# dataset\tresult\tat (epoch)\tnewest snapshot\tits creation (epoch)\n' >"$REPLICA_STATE"
  while IFS=$'\t' read -r cluster copy kind source prefix; do
    "$STUB_BIN/zfs" create -p -o mountpoint=none -o readonly=on "$copy"
    set_clock "@$((SNAP_OLD - 600))"
    "$STUB_BIN/zfs" snapshot "$copy@manual"
    set_clock "@$SNAP_OLD"
    "$STUB_BIN/zfs" snapshot "$copy@$prefix$(date -u -d "@$SNAP_OLD" +%Y%m%dT%H%M%SZ)"
    set_clock "@$SNAP_NEW"
    "$STUB_BIN/zfs" snapshot "$copy@$prefix$(date -u -d "@$SNAP_NEW" +%Y%m%dT%H%M%SZ)"
    printf '%s\tok\t%s\t%s\t%s\n' "$copy" "$PULLED" "$prefix$(date -u -d "@$SNAP_NEW" +%Y%m%dT%H%M%SZ)" "$SNAP_NEW" >>"$REPLICA_STATE"
  done <<<"$COPY_LINES"
  rm "$STUB_BIN/date"
  OLD_NAME=$COPY_PREFIX$(date -u -d "@$SNAP_OLD" +%Y%m%dT%H%M%SZ)
  NEW_NAME=$COPY_PREFIX$(date -u -d "@$SNAP_NEW" +%Y%m%dT%H%M%SZ)
}

# copy_json EXPR: EXPR of the report's JSON (j: the object, c: the first copy's entry)
copy_json() {
  json_in copies "$COPY" "$1"
}

@test "status on a replica: the datasets it reports are the ones replicate.sh pulls, in its order" {
  needs_copies
  replicate=$(script_of replicate)
  [ -n "$replicate" ]
  [ "$(awk -F '\t' '{ print $1 "\t" $4 "\t" $2 "\t" $3 "\t" $5 }' <<<"$(constant "$replicate" COPIES)")" = "$COPY_LINES" ]
  [ "$COPY_SOURCE" = "$(constant "$replicate" SOURCE)" ]
  # the state file it reads is the one replicate.sh writes
  [ "$(constant "$STATUS" REPLICA_STATE)" = "$(constant "$replicate" STATE_FILE)" ]
}

@test "status on a replica: an ok pull, snapshots here: a section per copy with the pull and the snapshots, exit 0" {
  needs_copies
  run -0 "$REPORT"
  [ "${#lines[@]}" -eq $((3 * $(wc -l <<<"$COPY_LINES"))) ]
  what="cluster data"
  [[ $COPY_KIND != archive ]] || what="WAL archive"
  [ "${lines[0]}" = "$COPY: $what of $COPY_CLUSTER, from $COPY_SOURCE ($COPY_SOURCE_DS)" ]
  [ "${lines[1]}" = "  last pull: ok at $(short "$PULLED") (1 min ago); newest received $NEW_NAME, created $(short "$SNAP_NEW")" ]
  # the foreign snapshot (not PREFIX<UTC time>) is not counted
  [ "${lines[2]}" = "  snapshots here: 2, oldest $OLD_NAME ($(short "$SNAP_OLD")), newest $NEW_NAME ($(short "$SNAP_NEW"), 60 min ago)" ]
  while IFS=$'\t' read -r cluster copy kind source prefix; do
    what="cluster data"
    [[ $kind != archive ]] || what="WAL archive"
    grep -qxF "$copy: $what of $cluster, from $COPY_SOURCE ($source)" <<<"$output"
  done <<<"$COPY_LINES"
  [[ $output != *problem* && $output != *unavailable* ]]
}

@test "status on a replica: after replicate.sh's own pull (replica.bats's world), its state file reads as an ok pull of each copy" {
  needs_copies
  # the source's pool and this host's, as replica.bats has them: no copy here yet
  rm -rf "${FAKE_ZFS_STATE:?}"/*
  replica_scripts
  replica_world
  # replicate.sh records the pull's time by the real clock (EPOCHSECONDS), not date's
  before=$(/bin/date +%s)
  run -0 "$SCRIPT"
  after=$(/bin/date +%s)
  report=$(rebase "$STATUS" REPLICA_STATE="$STATE")
  run -0 "$report" --json
  [ "$(copy_json '[x["last_pull"]["result"] for x in j["copies"]] == ["ok"] * len(j["copies"])')" = true ]
  [ "$(copy_json "all($before <= x['last_pull']['when']['epoch'] <= $after for x in j['copies'])")" = true ]
  # what the pull received is the newest snapshot here, with its creation
  [ "$(copy_json 'all(x["snapshots"]["newest_name"] == x["name"] + "@" + x["last_pull"]["newest_snapshot"] for x in j["copies"])')" = true ]
  [ "$(copy_json 'all(x["snapshots"]["newest"] == x["last_pull"]["newest_snapshot_created"] for x in j["copies"])')" = true ]
  # the cluster's copy: the source's two snapshots of ours (its foreign ones are not counted);
  # the archive's: those and the one its pull took
  cluster=$(awk -F '\t' -v c="$COPY_OF_CLUSTER" '$2 == c { print $1 }' <<<"$COPY_LINES")
  run -0 "$report" --json --cluster "$cluster"
  [ "$(COPY=$COPY_OF_CLUSTER copy_json 'c["snapshots"]["count"]')" -eq 2 ]
  [ "$(COPY=$COPY_OF_CLUSTER copy_json 'c["snapshots"]["oldest_name"]')" = "$COPY_OF_CLUSTER@${PREFIX}20261207T100000Z" ]
  [ "$(COPY=$COPY_OF_ARCHIVE copy_json 'c["snapshots"]["count"]')" -eq 3 ]
  [ "$(COPY=$COPY_OF_ARCHIVE copy_json 'c["snapshots"]["newest_name"]')" = "$COPY_OF_ARCHIVE@${PREFIX}20261207T120030Z" ]
}

@test "status on a replica: never pulled (no state file, or no line of the copy): said so, a problem, exit 1" {
  needs_copies
  rm "$REPLICA_STATE"
  while IFS=$'\t' read -r _ copy _; do
    "$STUB_BIN/zfs" destroy -R "$copy"
  done <<<"$COPY_LINES"
  run -1 "$REPORT"
  [ "${lines[1]}" = "  last pull: never pulled" ]
  [ "${lines[2]}" = "  snapshots here: 0" ]
  [ "$(grep -c '^  last pull: never pulled$' <<<"$output")" -eq "$(wc -l <<<"$COPY_LINES")" ]
  [[ $output == *"  problem: never pulled: there is no $REPLICA_STATE (host/replicate.sh has not run yet)"* ]]
  [[ $output == *"  problem: the copy $COPY is missing on this host"* ]]
  # a state file with one dataset only (replicate.sh --cluster before any full run): the
  # others were never pulled
  printf '%s\tok\t%s\t-\t-\n' "$COPY" "$PULLED" >"$REPLICA_STATE"
  run -1 "$REPORT" --json
  [ "$(copy_json 'c["last_pull"]["result"]')" = ok ]
  [ "$(copy_json '[x["last_pull"]["result"] for x in j["copies"][1:]] == ["never pulled"] * (len(j["copies"]) - 1)')" = true ]
  [ "$(copy_json '[x["last_pull"]["ok"] for x in j["copies"][1:]] == [False] * (len(j["copies"]) - 1)')" = true ]
  [[ $(copy_json 'j["copies"][1]["problems"][0]') == "never pulled: $REPLICA_STATE has no line of it (host/replicate.sh has not pulled it yet)" ]]
  [ "$(copy_json 'c["snapshots"]["count"]')" -eq 0 ]
}

@test "status on a replica: a failed pull is a problem, named with its time and what failed, exit 1" {
  needs_copies
  sed -i "s|^$COPY\tok\t.*|$COPY\tfailed: list of $COPY_SOURCE_DS\t$PULLED\t-\t-|" "$REPLICA_STATE"
  run -1 "$REPORT"
  [ "${lines[1]}" = "  last pull: failed: list of $COPY_SOURCE_DS at $(short "$PULLED") (1 min ago)" ]
  # what it still has here is reported
  [[ ${lines[2]} == "  snapshots here: 2, oldest $OLD_NAME "* ]]
  [ "${lines[3]}" = "  problem: the last pull ($(short "$PULLED"), 1 min ago) failed: list of $COPY_SOURCE_DS" ]
  [ "$(grep -c '^  problem:' <<<"$output")" -eq 1 ]
  run -1 "$REPORT" --json
  [ "$(copy_json 'c["healthy"]')" = false ]
  [ "$(copy_json 'c["last_pull"]["ok"]')" = false ]
  [ "$(copy_json 'c["last_pull"]["newest_snapshot"]')" = null ]
}

@test "status on a replica: a copy missing on this host after an ok pull is a problem, exit 1" {
  needs_copies
  "$STUB_BIN/zfs" destroy -R "$COPY"
  run -1 "$REPORT" --cluster "$COPY_CLUSTER"
  [ "${lines[1]}" = "  last pull: ok at $(short "$PULLED") (1 min ago); newest received $NEW_NAME, created $(short "$SNAP_NEW")" ]
  [ "${lines[2]}" = "  snapshots here: 0" ]
  [ "${lines[3]}" = "  problem: the copy $COPY is missing on this host: nothing of $COPY_SOURCE's $COPY_SOURCE_DS is kept here" ]
}

@test "status on a replica: --json has the copies beside an empty clusters list, Python's json reads it" {
  needs_copies
  run -0 "$REPORT" --json
  "$PYTHON" -c 'import json, sys; json.load(sys.stdin)' <<<"$output"
  [ "$(copy_json 'j["clusters"]')" = "[]" ]
  [ "$(copy_json 'j["host"]')" = "$(query "m['host']")" ]
  [ "$(copy_json '[x["name"] for x in j["copies"]]')" = "$("$PYTHON" -S -c 'import json, sys; print(json.dumps([l.split("\t")[1] for l in sys.argv[1].splitlines()]))' "$COPY_LINES")" ]
  [ "$(copy_json 'c["kind"]')" = "$COPY_KIND" ]
  [ "$(copy_json 'c["cluster"]')" = "$COPY_CLUSTER" ]
  [ "$(copy_json 'c["source"]')" = "$COPY_SOURCE" ]
  [ "$(copy_json 'c["source_dataset"]')" = "$COPY_SOURCE_DS" ]
  [ "$(copy_json 'c["healthy"]')" = true ]
  [ "$(copy_json 'c["last_pull"]["result"]')" = ok ]
  [ "$(copy_json 'c["last_pull"]["ok"]')" = true ]
  [ "$(copy_json 'c["last_pull"]["when"]["epoch"]')" -eq "$PULLED" ]
  [ "$(copy_json 'c["last_pull"]["when"]["time"]')" = "$(date -u -d "@$PULLED" +%Y-%m-%dT%H:%M:%SZ)" ]
  [ "$(copy_json 'c["last_pull"]["newest_snapshot"]')" = "$NEW_NAME" ]
  [ "$(copy_json 'c["last_pull"]["newest_snapshot_created"]["epoch"]')" -eq "$SNAP_NEW" ]
  [ "$(copy_json 'c["snapshots"]["count"]')" -eq 2 ]
  [ "$(copy_json 'type(c["snapshots"]["count"]) is int')" = true ]
  [ "$(copy_json 'c["snapshots"]["oldest"]["epoch"]')" -eq "$SNAP_OLD" ]
  [ "$(copy_json 'c["snapshots"]["oldest_name"]')" = "$COPY@$OLD_NAME" ]
  [ "$(copy_json 'c["snapshots"]["newest"]["epoch"]')" -eq "$SNAP_NEW" ]
  [ "$(copy_json 'c["snapshots"]["newest_name"]')" = "$COPY@$NEW_NAME" ]
  [ "$(copy_json 'c["problems"] + c["unavailable"] + c["notes"]')" = "[]" ]
}

@test "status on a replica: --prometheus --dry-run prints the copy metrics (labels source and copy) in the exposition format" {
  needs_copies
  run -0 "$REPORT" --prometheus --dry-run
  printf '%s\n' "$output" >"$SANDBOX/copies.prom"
  prom_check "$SANDBOX/copies.prom"
  labels="{source=\"$COPY_SOURCE\",copy=\"$COPY\"}"
  for sample in "status_scrape_success$labels 1" "status_healthy$labels 1" "pull_ok$labels 1" \
    "last_pull_timestamp_seconds$labels $PULLED" "snapshots$labels 2" \
    "newest_snapshot_timestamp_seconds$labels $SNAP_NEW" "oldest_snapshot_timestamp_seconds$labels $SNAP_OLD"; do
    grep -qxF "pitr_bundle_copy_$sample" <<<"$output"
  done
  [ "$(grep -c '^pitr_bundle_copy_pull_ok{' <<<"$output")" -eq "$(wc -l <<<"$COPY_LINES")" ]
  # no cluster families on a replica
  ! grep -q '^pitr_bundle_restorable_\|{cluster=' <<<"$output" || false
  # a failed pull: pull_ok 0, healthy 0; the file written into a folder as with clusters
  sed -i "s|^$COPY\tok\t.*|$COPY\tfailed: exit 1\t$PULLED\t-\t-|" "$REPLICA_STATE"
  mkdir "$SANDBOX/prom"
  run -1 "$REPORT" --prometheus --prometheus-dir "$SANDBOX/prom"
  [ -z "$output" ]
  prom_check "$SANDBOX/prom/pitr_bundle.prom"
  grep -qxF "pitr_bundle_copy_pull_ok$labels 0" "$SANDBOX/prom/pitr_bundle.prom"
  grep -qxF "pitr_bundle_copy_status_healthy$labels 0" "$SANDBOX/prom/pitr_bundle.prom"
}

@test "status on a replica: --cluster NAME reports that cluster's copies only; a cluster not copied is a usage error" {
  needs_copies
  run -0 "$REPORT" --cluster "$COPY_CLUSTER" --json
  [ "$(copy_json '[x["name"] for x in j["copies"]]')" = "$("$PYTHON" -S -c '
import json, sys
print(json.dumps([l.split("\t")[1] for l in sys.argv[1].splitlines() if l.split("\t")[0] == sys.argv[2]]))' "$COPY_LINES" "$COPY_CLUSTER")" ]
  [ "$(copy_json '{x["kind"] for x in j["copies"]} == {"cluster", "archive"}')" = true ]
  # the others are not read either: a failed pull of another cluster's copy does not count
  other=$(awk -F '\t' -v c="$COPY_CLUSTER" '$1 != c { print $2; exit }' <<<"$COPY_LINES")
  if [[ -n $other ]]; then
    sed -i "s|^$other\tok\t.*|$other\tfailed: exit 1\t$PULLED\t-\t-|" "$REPLICA_STATE"
    run -0 "$REPORT" --cluster "$COPY_CLUSTER"
    [[ $output != *"$other"* ]]
    run -1 "$REPORT"
  fi
  run -2 "$REPORT" --cluster no-such-cluster
  [[ $output == *"no cluster named no-such-cluster is copied here"* ]]
  [[ $output == *"--cluster NAME       only the copies of this cluster (copied: $COPY_CLUSTER"* ]]
}

@test "status on a replica: a failing zfs: the snapshots unavailable and named, the pull still reported" {
  needs_copies
  export FAKE_FAIL='zfs list*'
  run -1 "$REPORT" --cluster "$COPY_CLUSTER"
  [[ ${lines[1]} == "  last pull: ok at "* ]]
  [ "${lines[2]}" = "  snapshots here: ?" ]
  [ "${lines[3]}" = "  unavailable: snapshots: zfs list of $COPY failed: zfs: injected failure" ]
  run -1 "$REPORT" --prometheus --dry-run --cluster "$COPY_CLUSTER"
  grep -qxF "pitr_bundle_copy_status_scrape_success{source=\"$COPY_SOURCE\",copy=\"$COPY\"} 0" <<<"$output"
  ! grep -q '^pitr_bundle_copy_snapshots{' <<<"$output" || false
}

@test "status on a replica: a state file it may not read is unavailable, not never pulled" {
  needs_copies
  [[ $(/usr/bin/id -u) != 0 ]] || skip "root reads any file: run the suites as a user to test this"
  chmod 000 "$REPLICA_STATE"
  run -1 "$REPORT" --cluster "$COPY_CLUSTER"
  [ "${lines[1]}" = "  last pull: ?" ]
  [[ $output == *"  unavailable: last pull: $REPLICA_STATE is not readable by "* ]]
  [[ $output != *"never pulled"* ]]
}
