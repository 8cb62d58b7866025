#!/usr/bin/env bats
# The primary's own Nagios check (role "check-primary", run on the primary as its OS user),
# with psql stubbed and the data directory in the sandbox, on each cluster of the bundle: what
# it asks depends on the major (pg_stat_archiver and slots from 9.4, wal_status from 13,
# pg_xlog before 10). For real, on PostgreSQL 10 and 17: tests/test_check_primary_real_pg.py.

# What this suite reads of its cluster, and all it sees of the bundle (generator/views.py):
# view roles: check-primary
# view facts: name postgres_major replication_slot replication_tls monitor archive.method

load test_helper

setup() {
  setup_stubs
  CLUSTER=$(cluster_fact "['name']")
  STATE_DIR=$BATS_TEST_TMPDIR/state
  # archive.method standby: no archiving on the primary, no dropped-WAL counter to rebase
  CHECK=$(rebase "$(cluster_script check-primary)" "?DROPPED_FILE=$STATE_DIR/$CLUSTER-dropped-wal")
  ARCHIVE_METHOD=$(cluster_fact "['archive']['method']")
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

# nfs_only: a test of the NFS path's archiving (archive_command on the primary, its helper's
# dropped-WAL counter); with archive.method standby the primary archives nothing for us
nfs_only() {
  [[ $ARCHIVE_METHOD == nfs ]] || skip "archive.method standby: the primary does not archive for the backup host"
}

# healthy_primary: archiving on, the last archive_command a success, the slot active and
# keeping 1 MB with its WAL reserved
healthy_primary() {
  NOW=$(date -u +%s)
  primary_answers on "0|$((NOW - 30))|0||$NOW|f" "true|1048576|reserved|1073741824"
}

# primary_answers ARCHIVE_MODE ARCHIVER_ROW SLOT_ROW [REPLICATION_ROW [TLS_ROW]]: what the
# stub psql answers (a row of '' is no row; SQL it does not know fails, as a server of an older
# major would); the replication row: the backup standby's sync_states|synchronous_standby_names;
# the TLS row: its walsenders|those over TLS|those hidden|TLS versions (default: one, over TLS)
primary_answers() {
  stub psql "case \"\$*\" in
  *'show archive_mode'*) echo '$1' ;;
  *pg_stat_ssl*) echo '${5:-1|1|0|TLSv1.3}' ;;
  *pg_stat_replication*) echo '${4:-|}' ;;
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
  # (a spec asking for TLS: and that the standby streams over it, tested below)
  [[ $output == "PITR-PRIMARY OK - $CLUSTER: archiving, slot and WAL folder healthy | "* ||
    $output == "PITR-PRIMARY OK - $CLUSTER: archiving, slot and WAL folder healthy; "*" | "* ]]
  [[ $output == *"wal_dir="*"B;"* ]]
  if [[ $ARCHIVE_METHOD == standby ]]; then
    # nothing of the NFS path: no archiver, no .ready files, no dropped-WAL counter
    [[ $output != *archive_pending* && $output != *archive_failed* && $output != *dropped_wal* ]]
    [ -z "$(calls 'pg_stat_archiver')" ]
    [[ $output == *"slot_retained=1048576B;"* ]]
  elif ((MAJOR >= 904)); then
    [[ $output == *"archive_pending=0;;"* ]]
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

# tls_cluster: skips a cluster whose spec asks for no TLS (replication.tls)
tls_cluster() {
  TLS_MODE=$(cluster_fact "['replication_tls'] and facts['clusters'][${CLUSTER_INDEX:-0}]['replication_tls']['mode']")
  [[ -n $TLS_MODE ]] || skip "the spec asks for no TLS: not checked"
}

@test "check-primary: no TLS asked for: pg_stat_ssl is never asked" {
  [[ -z $(cluster_fact "['replication_tls']") ]] || skip "the spec asks for TLS"
  run -0 "$CHECK" --pgdata "$PGDATA_DIR"
  [ -z "$(calls pg_stat_ssl)" ]
  [[ $output != *TLS* ]]
}

@test "check-primary: TLS asked for, the backup standby over TLS: OK, saying so (9.5+: pg_stat_ssl)" {
  tls_cluster
  run -0 "$CHECK" --pgdata "$PGDATA_DIR"
  if ((MAJOR >= 905)); then
    [[ $output == "PITR-PRIMARY OK - $CLUSTER: archiving, slot and WAL folder healthy; the backup standby streams over TLS (TLSv1.3) | "* ]]
    [[ $output == *"standby_tls=1c"* ]]
    calls 'pg_stat_replication r left join pg_stat_ssl s on s.pid = r.pid' | grep -q .
  else
    [[ $output == *"TLS of the backup standby's connection unknown (no pg_stat_ssl before 9.5)"* ]]
    [ -z "$(calls pg_stat_ssl)" ]
  fi
}

@test "check-primary: TLS asked for: the backup standby in clear text, or not streaming, is CRITICAL; hidden is UNKNOWN" {
  tls_cluster
  ((MAJOR >= 905)) || skip "no pg_stat_ssl before 9.5"
  NOW=$(date -u +%s)
  primary_answers on "0|$((NOW - 30))|0||$NOW|f" "true|1048576|reserved|1073741824" "|" "2|1|0|TLSv1.3"
  run -2 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == "PITR-PRIMARY CRITICAL - "*"streams WITHOUT TLS (1 of 2 connection(s)), but the spec asks for $TLS_MODE"* ]]
  primary_answers on "0|$((NOW - 30))|0||$NOW|f" "true|1048576|reserved|1073741824" "|" "0|0|0|"
  run -2 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == *"does not stream, so its TLS ($TLS_MODE, replication.tls) cannot be checked"* ]]
  [[ $output == *"standby_tls=0c"* ]]
  primary_answers on "0|$((NOW - 30))|0||$NOW|f" "true|1048576|reserved|1073741824" "|" "1|0|1|"
  run -3 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == "PITR-PRIMARY UNKNOWN - "*"TLS of the backup standby $CLUSTER is hidden from this role"* ]]
  # an answer it cannot read is UNKNOWN, never CRITICAL or OK
  primary_answers on "0|$((NOW - 30))|0||$NOW|f" "true|1048576|reserved|1073741824" "|" "|"
  run -3 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == "PITR-PRIMARY UNKNOWN - "*"TLS of the backup standby unknown: pg_stat_ssl answered '|'"* ]]
}

@test "check-primary: WAL waiting for archiving warns, then is critical, by the spec's minutes (before 9.4 the only sign)" {
  nfs_only
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
  nfs_only
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
  if [[ $ARCHIVE_METHOD == standby ]]; then
    # the backup standby archives: the primary's archive_mode is not the bundle's concern
    primary_answers off "" "true|1048576|reserved|1073741824"
    run -0 "$CHECK" --pgdata "$PGDATA_DIR"
    [ -z "$(calls 'pg_stat_archiver')" ]
  else
  primary_answers off "0|$((NOW - 30))|0||$NOW|f" "true|1048576|reserved|1073741824"
  run -2 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == "PITR-PRIMARY CRITICAL - $CLUSTER: archive_mode is off: nothing reaches the backup host"* ]]
  fi
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

@test "check-primary: the backup standby as a sync, quorum or potential synchronous standby is CRITICAL (9.1+)" {
  local archiver="0|$((NOW - 30))|0||$NOW|f" slot="true|1048576|reserved|1073741824" state
  if ((MAJOR < 901)); then
    run -0 "$CHECK" --pgdata "$PGDATA_DIR"
    [ -z "$(calls 'pg_stat_replication')" ]
    return 0
  fi
  primary_answers on "$archiver" "$slot" "async|s1"
  run -0 "$CHECK" --pgdata "$PGDATA_DIR"
  for state in sync quorum potential; do
    primary_answers on "$archiver" "$slot" "$state|FIRST 1 (s1, $CLUSTER)"
    run -2 "$CHECK" --pgdata "$PGDATA_DIR"
    [[ $output == "PITR-PRIMARY CRITICAL - $CLUSTER: the backup standby $CLUSTER is "*"(sync_state $state)"*"take it out of synchronous_standby_names ('FIRST 1 (s1, $CLUSTER)') and reload |"* ]]
  done
  [[ $output == *"it becomes synchronous, and commits wait for the backup host, when the synchronous standby goes"* ]]
  calls "pg_stat_replication where application_name = '$CLUSTER'" | grep -q .
  # a row this role may not read is never OK
  primary_answers on "$archiver" "$slot" "hidden|*"
  run -3 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == *"sync_state of the backup standby $CLUSTER is hidden from this role"* ]]
}

# dropped N LAST WHEN: the archive helper's counter, as it writes it
dropped() {
  mkdir -p "$STATE_DIR"
  echo "$1 $((16777216 * $1)) $2 $3" >"$STATE_DIR/$CLUSTER-dropped-wal"
}

# base_backup SEGMENT [LABEL]: a backup history file in the WAL folder, as the server leaves it
base_backup() {
  printf 'START WAL LOCATION: 0/3000028 (file %s)\nLABEL: %s\n' "$1" "${2:-pitr-bundle $CLUSTER}" \
    >"$PGDATA_DIR/$WAL_DIR/$1.00000028.backup"
}

@test "check-primary: WAL dropped since the newest base backup is CRITICAL, asking for a new one" {
  nfs_only
  run -0 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == *"dropped_wal=0c"* ]]
  base_backup 000000010000000000000005
  dropped 3 000000010000000000000007 2026-12-06T10:00:00Z
  run -2 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == "PITR-PRIMARY CRITICAL - $CLUSTER: the archive helper dropped 3 WAL file(s) (the last: 000000010000000000000007 at 2026-12-06T10:00:00Z, over primary.archive_queue_max) after the start of the newest base backup (000000010000000000000005): the archive has a gap no restore can cross; take a new base backup (50-basebackup.sh on the backup host) |"* ]]
  [[ $output == *"dropped_wal=3c"* ]]
  # the backup's own first segment counts; a later timeline does not hide it
  dropped 4 000000020000000000000005 2026-12-06T11:00:00Z
  run -2 "$CHECK" --pgdata "$PGDATA_DIR"
  # another tool's newer base backup does not count; a newer one of the bundle does
  base_backup 000000010000000000000009 "other tool"
  run -2 "$CHECK" --pgdata "$PGDATA_DIR"
  base_backup 000000020000000000000006
  run -0 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == *"dropped_wal=4c"* ]]
  # a timeline history file dropped after the newest base backup was written: by time
  touch -d '2026-12-06 12:00:00 UTC' "$PGDATA_DIR/$WAL_DIR/000000020000000000000006.00000028.backup"
  dropped 5 00000003.history 2026-12-06T13:00:00Z
  run -2 "$CHECK" --pgdata "$PGDATA_DIR"
  dropped 5 00000003.history 2026-12-06T11:00:00Z
  run -0 "$CHECK" --pgdata "$PGDATA_DIR"
}

@test "check-primary: dropped WAL with no base backup of the bundle in the WAL folder is CRITICAL" {
  nfs_only
  dropped 1 000000010000000000000002 2026-12-06T10:00:00Z
  run -2 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == *"dropped 1 WAL file(s)"*"and no base backup of the bundle ('pitr-bundle $CLUSTER') is in $WAL_DIR to start after it"* ]]
}

@test "check-primary: a state folder or counter it cannot read is UNKNOWN, never OK" {
  nfs_only
  base_backup 000000010000000000000005
  # a garbled counter, or one without its file name and time, is never read as "nothing since"
  dropped 1 000000010000000000000002 2026-12-06T10:00:00Z
  for garbled in garbage "1 16777216" "1 16777216 00000003.history yesterday"; do
    echo "$garbled" >"$STATE_DIR/$CLUSTER-dropped-wal"
    run -3 "$CHECK" --pgdata "$PGDATA_DIR"
    [[ $output == *"$STATE_DIR/$CLUSTER-dropped-wal unreadable"* ]]
  done
  rm -f "$STATE_DIR/$CLUSTER-dropped-wal"
  # a folder this user cannot search hides the counter (root searches every folder)
  [ "$(id -u)" -ne 0 ] || return 0
  chmod 0600 "$STATE_DIR"
  run -3 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == *"$STATE_DIR is not readable by"* ]]
}

@test "check-primary (archive.method standby): an inactive slot warns (nothing reaches the archive), a missing one is critical" {
  [[ $ARCHIVE_METHOD == standby ]] || skip "this cluster's primary archives over NFS"
  primary_answers off "" "false|1048576|reserved|1073741824"
  run -1 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == "PITR-PRIMARY WARNING - $CLUSTER: slot $SLOT inactive: the backup standby is not streaming, nothing reaches the archive (the slot keeps the WAL meanwhile) |"* ]]
  primary_answers off "" ""
  run -2 "$CHECK" --pgdata "$PGDATA_DIR"
  [[ $output == *"replication slot $SLOT missing: the standby cannot stream"* ]]
}
