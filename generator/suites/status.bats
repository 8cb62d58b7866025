#!/usr/bin/env bats
# The status report (role "status": host/status.sh, installed as pitr-status, and its installer),
# with the fake ZFS and a stub standby. Its range is proven against a real restore on zfs-fuse
# and PostgreSQL 16 (tests/test_pitr_zfs_pg.py).

load test_helper

# the world every test starts from: the first cluster with three snapshots (3 h, 2 h and 1 h
# ago, REDO points ...02, ...04, ...06), segments ...01 to ...08 archived (the newest a minute
# ago), a standby that replayed to the end of ...08, a drill that succeeded yesterday
make_world() {
  setup_stubs
  CLUSTER=$(cluster_fact "['name']")
  DATASET=$(cluster_fact "['dataset']")
  PREFIX=$(cluster_fact "['snapshots']['prefix']")
  POOL=$(query "facts['pool']['name']")
  ARCHIVE=$SANDBOX/arch PGDATA=$SANDBOX/pgdata PGHOME=$SANDBOX/pghome STATE=$SANDBOX/drill.state
  NOW=$(date -u +%s)
  make_pool
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
  STATUS=$(script_of status)
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

# json EXPR: EXPR of the report's JSON (bound to j: the object, c: this cluster's entry),
# parsed by Python's json module from $output
json() {
  "$PYTHON" -S -c '
import json, sys
j = json.loads(sys.argv[1])
c = next(x for x in j["clusters"] if x["name"] == sys.argv[2])
v = eval(sys.argv[3])
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)' "$output" "$CLUSTER" "$1"
}

@test "status: one summary line for the cluster, the range from the oldest snapshot to the standby's last replayed transaction" {
  run -0 "$REPORT" --cluster "$CLUSTER"
  [ "${#lines[@]}" -eq 1 ]
  oldest=$(date -u -d "@$((SNAP_OLDEST + 1))" '+%F %T UTC')
  newest=$(date -u -d "@$XACT" '+%F %T UTC')
  [[ $output == "$CLUSTER: restorable $oldest to $newest; snapshots 3 (newest 60 min ago); archive 128.0 MiB, newest WAL 1 min ago; replay lag 0 B; drill $DRILL$DRILL_AGE" ]]
}

@test "status: every cluster gets its line; one it cannot read is named and makes exit 1" {
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
  [[ $DRILL == ok ]] || skip "the cluster's drill is off"
  printf 'when_epoch=1\nresult=failed\nerror=say "no" \\ then\tstop\x01\n' >"$STATE"
  run -1 "$REPORT" --json --cluster "$CLUSTER"
  [ "$(json 'c["drill"]["error"]')" = "$(printf 'say "no" \\ then\tstop\x01')" ]
  [[ $(json 'c["problems"][0]') == "the last restore drill failed: say"* ]]
}

@test "status: the standby replaying past the archive's end: the newest archived file's time, said to be an upper bound" {
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
  rm "$ARCHIVE"/*/000000010000000000000007
  run -1 "$REPORT" --json --cluster "$CLUSTER"
  [ "$(json 'c["restorable"]["oldest"]')" = null ]
  [ "$(json 'c["restorable"]["newest"]')" = null ]
  [[ $(json '"\n".join(c["problems"])') == *"no snapshot starts after the gap: nothing restorable by --target-time up to now; take a new base backup"* ]]
  run -1 "$REPORT" --cluster "$CLUSTER"
  [[ ${lines[0]} == "$CLUSTER: restorable: nothing known; snapshots 3"* ]]
}

@test "status: a cluster with no snapshot yet: nothing restorable, exit 1, the other figures there" {
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
  export FAKE_FAIL='zfs list*'
  run -1 "$REPORT" --cluster "$CLUSTER"
  [[ ${lines[0]} == "$CLUSTER: restorable: nothing known; snapshots ?; archive 128.0 MiB"* ]]
  [[ $output == *"  unavailable: snapshots: zfs list of $DATASET failed: zfs: injected failure"* ]]
  run -1 "$REPORT" --json --cluster "$CLUSTER"
  [ "$(json 'c["archive"]["files"]')" -eq 8 ]
  [ "$(json 'c["snapshots"]["count"]')" = null ]
}

@test "status: the standby down is a problem; the range ends at the archive's newest file" {
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
