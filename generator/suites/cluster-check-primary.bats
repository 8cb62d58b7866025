#!/usr/bin/env bats
# The primary's own Nagios check (role "check-primary", run on the primary as its OS user),
# with psql stubbed and the data directory in the sandbox, on each cluster of the bundle: what
# it asks depends on the major (pg_stat_archiver and slots from 9.4, wal_status from 13,
# pg_xlog before 10). For real, on PostgreSQL 10 and 17: tests/test_check_primary_real_pg.py.

# What this suite reads of its cluster, and all it sees of the bundle (generator/views.py):
# view roles: check-primary
# view facts: name postgres_major replication_slot monitor

load test_helper

setup() {
  setup_stubs
  CHECK=$(cluster_script check-primary)
  CLUSTER=$(cluster_fact "['name']")
  SLOT=$(cluster_fact "['replication_slot']")
  # the major as a number: 9.0 -> 900, 17 -> 1700
  local major
  major=$(cluster_fact "['postgres_major']")
  if [[ $major == *.* ]]; then MAJOR=$((${major%%.*} * 100 + ${major#*.})); else MAJOR=$((major * 100)); fi
  WAL_DIR=pg_wal
  ((MAJOR >= 1000)) || WAL_DIR=pg_xlog
  PGDATA_DIR=$BATS_TEST_TMPDIR/pgdata
  mkdir -p "$PGDATA_DIR/$WAL_DIR/archive_status"
  healthy_primary
}

# healthy_primary: archiving on, the last archive_command a success, the slot active and
# keeping 1 MB with its WAL reserved
healthy_primary() {
  NOW=$(date -u +%s)
  primary_answers on "0|$((NOW - 30))|0||$NOW|f" "true|1048576|reserved|1073741824"
}

# primary_answers ARCHIVE_MODE ARCHIVER_ROW SLOT_ROW: what the stub psql answers (a row of
# '' is no row; SQL it does not know fails, as a server of an older major would)
primary_answers() {
  stub psql "case \"\$*\" in
  *'show archive_mode'*) echo '$1' ;;
  *pg_stat_archiver*) echo '$2' ;;
  *pg_replication_slots*) [[ -z '$3' ]] || echo '$3' ;;
  *) echo \"psql: unexpected query: \$*\" >&2; exit 1 ;;
esac"
}

# ready MINUTES N: N more WAL files waiting for archiving, the oldest of them MINUTES and a
# half old (the check counts whole minutes)
ready() {
  local i now
  now=$(date -u +%s)
  for ((i = 0; i < $2; i++)); do
    touch -d "@$((now - $1 * 60 - 30 + i))" "$PGDATA_DIR/$WAL_DIR/archive_status/0000000100000000000000$1$i.ready"
  done
}

@test "check-primary: a healthy primary is OK, one line with perfdata, and it changes nothing" {
  run -0 "$CHECK" --pgdata "$PGDATA_DIR"
  [ "${#lines[@]}" -eq 1 ]
  [[ $output == "PITR-PRIMARY OK - $CLUSTER: archiving, slot and WAL folder healthy | "* ]]
  [[ $output == *"archive_pending=0;;"* && $output == *"wal_dir="*"B;"* ]]
  if ((MAJOR >= 904)); then
    [[ $output == *"archive_failed=0c"* ]]
    [[ -z $SLOT || $output == *"slot_retained=1048576B;"* ]]
  else # no pg_stat_archiver, no slots: never asked
    [ -z "$(calls 'pg_stat_archiver|pg_replication_slots')" ]
  fi
  # only queries: every psql call is a select or a show
  local other
  other=$(calls '^psql' | grep -Ev -- '-c (show |select )' || true)
  [ -n "$(calls '^psql')" ] && [ -z "$other" ]
}

@test "check-primary: WAL waiting for archiving warns, then is critical, by the spec's minutes (before 9.4 the only sign)" {
  local warn crit
  warn=$(cluster_fact "['monitor']['archive_warn_minutes']")
  crit=$(cluster_fact "['monitor']['archive_crit_minutes']")
  ready $((warn - 1)) 3
  run -0 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == *"archive_pending=3;;"* ]]
  ready "$warn" 2
  run -1 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == "PITR-PRIMARY WARNING - $CLUSTER: 5 WAL file(s) wait for archiving, the oldest for $warn min |"* ]]
  ready "$crit" 1
  run -2 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == "PITR-PRIMARY CRITICAL - $CLUSTER: 6 WAL file(s) wait for archiving, the oldest for $crit min |"* ]]
}

@test "check-primary: a failing archive_command is CRITICAL, naming the file (9.4+: pg_stat_archiver)" {
  ((MAJOR >= 904)) || skip "no pg_stat_archiver before 9.4"
  primary_answers on "7|$((NOW - 600))|$((NOW - 60))|000000010000000000000042|$NOW|t" "true|1048576|reserved|1073741824"
  run -2 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == "PITR-PRIMARY CRITICAL - $CLUSTER: archive_command fails since "*" UTC (7 failures, last for 000000010000000000000042)"* ]]
  [[ $output == *"archive_failed=7c"* ]]
  # a failure in the second of the last success: the server's comparison decides, not seconds
  primary_answers on "1|$NOW|$NOW|000000010000000000000043|$NOW|t" "true|1048576|reserved|1073741824"
  run -2 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == *"(1 failures, last for 000000010000000000000043)"* ]]
  grep -q 'last_failed_time > last_archived_time' "$CHECK"
  # failures that a later success ended: OK
  primary_answers on "7|$NOW|$((NOW - 60))|000000010000000000000042|$NOW|f" "true|1048576|reserved|1073741824"
  run -0 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == *"archive_failed=7c"* ]]
}

@test "check-primary: archive_mode off, or a primary that does not answer, is CRITICAL" {
  primary_answers off "0|$((NOW - 30))|0||$NOW|f" "true|1048576|reserved|1073741824"
  run -2 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == "PITR-PRIMARY CRITICAL - $CLUSTER: archive_mode is off: nothing reaches the backup host"* ]]
  stub psql 'echo "psql: error: connection to server failed" >&2; exit 2'
  run -2 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == "PITR-PRIMARY CRITICAL - $CLUSTER: cannot query the primary: psql: error: connection to server failed"* ]]
}

@test "check-primary: the WAL folder warns and goes critical at the spec's sizes" {
  local warn crit
  warn=$(cluster_fact "['monitor']['primary_wal_warn_mb']")
  crit=$(cluster_fact "['monitor']['primary_wal_crit_mb']")
  truncate -s "$((warn * 1048576))" "$PGDATA_DIR/$WAL_DIR/000000010000000000000001"
  run -1 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == "PITR-PRIMARY WARNING - $CLUSTER: $WAL_DIR holds $warn MB |"* ]]
  truncate -s "$((crit * 1048576))" "$PGDATA_DIR/$WAL_DIR/000000010000000000000001"
  run -2 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == "PITR-PRIMARY CRITICAL - $CLUSTER: $WAL_DIR holds $crit MB |"* ]]
}

@test "check-primary: the spec's slot missing, keeping too much, or losing its WAL (13+: wal_status)" {
  [[ -n $SLOT ]] || skip "the spec names no replication slot"
  ((MAJOR >= 904)) || skip "no slots before 9.4"
  local archiver="0|$((NOW - 30))|0||$NOW|f" warn crit
  primary_answers on "$archiver" ""
  run -2 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == *"replication slot $SLOT missing: the standby cannot stream"* ]]
  warn=$(cluster_fact "['monitor']['slot_retained_warn_mb']")
  crit=$(cluster_fact "['monitor']['slot_retained_crit_mb']")
  primary_answers on "$archiver" "false|$((warn * 1048576))|extended|1048576"
  run -1 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == *"slot $SLOT (inactive) keeps $warn MB of WAL"* ]]
  primary_answers on "$archiver" "false|$((crit * 1048576))|reserved|1048576"
  run -2 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == *"slot $SLOT (inactive) keeps $crit MB of WAL"* ]]
  if ((MAJOR >= 1300)); then
    primary_answers on "$archiver" "false|1048576|unreserved|4096"
    run -2 "$CHECK" --pgdata "$PGDATA_DIR"
    [[ $output == *"slot $SLOT (inactive) is about to lose its WAL (wal_status unreserved, safe_wal_size 4096B)"* ]]
    primary_answers on "$archiver" "false|-1|lost|-1"
    run -2 "$CHECK" --pgdata "$PGDATA_DIR"
    [[ $output == *"slot $SLOT (inactive) lost WAL it needed (wal_status lost): the standby must be rebuilt"* ]]
  else # no wal_status column before 13: never asked for it
    [ -z "$(calls 'wal_status')" ]
  fi
}
