#!/usr/bin/env bats
# The standby script (role "standby"), with PGDATA in a sandbox and a stub pg_ctl.

# What this suite reads of its cluster, and all it sees of the bundle (generator/views.py):
# view roles: standby
# view facts: name user port postgres_major paths.archive primary.address primary.nodes primary.port replication_user primary_conninfo follows_partner recovery_file replication_tls archive.method

load test_helper

make_world() {
  setup_cluster_user
  PGDATA=$SANDBOX/pg_root
  mkdir -p "$PGDATA" "$SANDBOX/home" "$SANDBOX/log"
  cluster_fact "['postgres_major']" >"$PGDATA/PG_VERSION"
  printf '# the primary'"'"'s postgresql.conf\nport = 5432\n' >"$PGDATA/postgresql.conf"
  echo "local all all trust" >"$PGDATA/pg_hba.conf"
  fake_pghome "$SANDBOX/pghome"
  tls_ca_file
  # archive.method standby: the archive folders and the helper it installs, in the sandbox
  STANDBY_IN_BUNDLE=$(cluster_script standby)
  STANDBY_SCRIPT=$(rebase "$STANDBY_IN_BUNDLE" OS_HOME="$SANDBOX/home" PGDATA="$PGDATA" \
    PGHOME="$SANDBOX/pghome" LOG_DIR="$SANDBOX/log" "${TLS_REBASE[@]}" "?INSTALLER_PATH=$STANDBY_IN_BUNDLE" \
    "?ARCHIVE=$SANDBOX/pg_arch/arch" "?HELPER=$SANDBOX/sbin/helper")
  stub chown
  RECOVERY_FILE=$(cluster_fact "['recovery_file']")
  ARCHIVE_METHOD=$(cluster_fact "['archive']['method']")
  export PITR_REPLICATION_PASSWORD=secret
}

setup_file() {
  world_setup_file make_world
}

setup() {
  world_reset
}

@test "standby: writes the settings, includes them once, and the signal or recovery.conf of its version" {
  run -0 "$STANDBY_SCRIPT"
  grep -qxF "port = '$(cluster_fact "['port']")'" "$PGDATA/pitr-bundle.conf"
  if [[ $ARCHIVE_METHOD == standby ]]; then
    grep -qxF "archive_mode = 'always'" "$PGDATA/pitr-bundle.conf"
  else
    grep -qxF "archive_mode = 'off'" "$PGDATA/pitr-bundle.conf"
    ! grep -q "archive_command" "$PGDATA/pitr-bundle.conf" || false
  fi
  [ "$(grep -cxF "include 'pitr-bundle.conf'" "$PGDATA/postgresql.conf")" -eq 1 ]
  if [[ $RECOVERY_FILE == recovery.conf ]]; then
    grep -qxF "standby_mode = 'on'" "$PGDATA/recovery.conf"
    grep -qxF "primary_conninfo = '$(cluster_fact "['primary_conninfo']")'" "$PGDATA/recovery.conf"
    grep -q "^restore_command = " "$PGDATA/recovery.conf"
    grep -qxF "recovery_target_timeline = 'latest'" "$PGDATA/recovery.conf"
    [ ! -e "$PGDATA/standby.signal" ]
    ! grep -q "primary_conninfo" "$PGDATA/pitr-bundle.conf"
  else
    [ -f "$PGDATA/standby.signal" ]
    [ ! -e "$PGDATA/recovery.conf" ]
    grep -qxF "primary_conninfo = '$(cluster_fact "['primary_conninfo']")'" "$PGDATA/pitr-bundle.conf"
    grep -qxF "recovery_target_timeline = 'latest'" "$PGDATA/pitr-bundle.conf"
    ! grep -q "standby_mode" "$PGDATA/pitr-bundle.conf"
  fi
}

@test "standby: the conninfo lists the HA partner where libpq takes several hosts, else the primary alone" {
  conninfo=$(cluster_fact "['primary_conninfo']")
  address=$(cluster_fact "['primary']['address']")
  if [[ $(cluster_fact "['follows_partner']") == True ]]; then
    mapfile -t nodes < <(cluster_fact "['primary']['nodes']")
    ((${#nodes[@]} == 2))
    [[ $conninfo == "host=${nodes[0]},${nodes[1]} port="* ]]
    [[ $conninfo == *" target_session_attrs=read-write" || $conninfo == *" target_session_attrs=read-write ssl"* ]]
  else
    [[ $conninfo == "host=$address port=$(cluster_fact "['primary']['port']") "* ]]
    [[ $conninfo != *target_session_attrs* ]]
  fi
}

@test "standby: ~/.pgpass gets one line per node (primary and HA partner), once" {
  run -0 "$STANDBY_SCRIPT"
  mapfile -t nodes < <(cluster_fact "['primary']['nodes']")
  for node in "${nodes[@]}"; do
    grep -qxF "$node:$(cluster_fact "['primary']['port']"):*:$(cluster_fact "['replication_user']"):secret" "$SANDBOX/home/.pgpass"
  done
  count=$(wc -l <"$SANDBOX/home/.pgpass")
  [ "$count" -eq "${#nodes[@]}" ]
  run -0 "$STANDBY_SCRIPT"
  [ "$(wc -l <"$SANDBOX/home/.pgpass")" -eq "$count" ]
  [[ $output == *"replication password for $(cluster_fact "['primary']['address']") already present"* ]]
}

@test "standby: restore_command reads the cluster's own archive" {
  run -0 "$STANDBY_SCRIPT"
  archive=$(cluster_fact "['paths']['archive']")
  grep -qF "restore_command = 'cp --preserve=timestamps $archive/*/%f \"%p\"'" "$PGDATA"/{pitr-bundle.conf,recovery.conf} 2>/dev/null
}

@test "standby: starts the standby, and a second run changes nothing" {
  run -0 "$STANDBY_SCRIPT"
  calls "pg_ctl -D $PGDATA -[wW] -t 300 -l $SANDBOX/log/pg_ctl.log start" | grep -q .
  : >"$STUB_LOG"
  run -0 "$STANDBY_SCRIPT"
  [ -z "$(calls '^(install|mv|pg_ctl .* (start|stop))')" ]
  [[ $output == *"the standby is already running"* ]]
}

@test "standby: a changed configuration of a running standby is applied only with --restart" {
  run -0 "$STANDBY_SCRIPT"
  echo "tampered = 1" >>"$PGDATA/pitr-bundle.conf"
  : >"$STUB_LOG"
  run -0 "$STANDBY_SCRIPT"
  [[ $output == *"run again with --restart"* ]]
  [ -z "$(calls 'pg_ctl .* (start|stop)')" ]
  run -0 "$STANDBY_SCRIPT" --restart
  calls 'pg_ctl .* stop' | grep -q .
}

@test "standby: never leaves both a recovery.conf and a standby.signal" {
  touch "$PGDATA/standby.signal" "$PGDATA/recovery.conf"
  run -0 "$STANDBY_SCRIPT" --no-start
  if [[ $RECOVERY_FILE == recovery.conf ]]; then
    [ ! -e "$PGDATA/standby.signal" ] && [ -e "$PGDATA/standby.signal.pitr-bundle-moved" ]
  else
    [ ! -e "$PGDATA/recovery.conf" ] && [ -e "$PGDATA/recovery.conf.pitr-bundle-moved" ]
  fi
}

@test "standby: refuses a PGDATA of another major version" {
  echo 8.4 >"$PGDATA/PG_VERSION"
  run -3 "$STANDBY_SCRIPT"
  [[ $output == *"is PostgreSQL 8.4, the spec says"* ]]
  [ ! -e "$PGDATA/pitr-bundle.conf" ]
}

@test "standby: refuses an empty PGDATA (no base backup yet)" {
  rm "$PGDATA/PG_VERSION"
  run -3 "$STANDBY_SCRIPT"
  [[ $output == *"run the basebackup script first"* ]]
}

@test "standby: --dry-run writes and starts nothing" {
  run -0 "$STANDBY_SCRIPT" --dry-run
  [ ! -e "$PGDATA/pitr-bundle.conf" ]
  [ -z "$(calls '^(install|mv)|pg_ctl .* start')" ]
  ! grep -q pitr-bundle "$PGDATA/postgresql.conf"
}

@test "standby: creates a postgresql.conf when the primary keeps its own outside PGDATA" {
  rm "$PGDATA/postgresql.conf" "$PGDATA/pg_hba.conf"
  run -0 "$STANDBY_SCRIPT" --no-start
  grep -qxF "include 'pitr-bundle.conf'" "$PGDATA/postgresql.conf"
  [ -f "$PGDATA/pg_hba.conf" ]
}

@test "standby: TLS asked for: primary_conninfo carries sslmode and the CA file; without the CA file it refuses, nothing written" {
  [[ -n $TLS_CA ]] || skip "the spec asks for no TLS"
  local mode ca conf=$PGDATA/pitr-bundle.conf
  mode=$(cluster_fact "['replication_tls']['mode']")
  ca=$(cluster_fact "['replication_tls']['ca_file']")
  [[ $RECOVERY_FILE == recovery.conf ]] && conf=$PGDATA/recovery.conf
  rm "$TLS_CA"
  run -3 "$STANDBY_SCRIPT"
  [[ $output == *"$TLS_CA missing: replication.tls.mode $mode checks the primary's certificate against it"* ]]
  [ ! -e "$PGDATA/pitr-bundle.conf" ] && [ ! -e "$PGDATA/standby.signal" ] && [ ! -e "$PGDATA/recovery.conf" ]
  [ -z "$(calls '^(pg_ctl|install)')" ]
  echo "-----BEGIN CERTIFICATE-----" >"$TLS_CA"
  run -0 "$STANDBY_SCRIPT"
  grep -q "^primary_conninfo = 'host=.* sslmode=$mode sslrootcert=$ca'\$" "$conf"
}

@test "standby: no TLS asked for: primary_conninfo names no sslmode" {
  [[ -z $TLS_CA ]] || skip "the spec asks for TLS"
  run -0 "$STANDBY_SCRIPT"
  ! grep -q "sslmode" "$PGDATA"/{pitr-bundle.conf,recovery.conf} 2>/dev/null || false
}

@test "standby (archive.method standby): installs the bundle's helper before the start and archives through it" {
  [[ $ARCHIVE_METHOD == standby ]] || skip "this cluster's primary archives over NFS"
  run -0 "$STANDBY_SCRIPT"
  name=$(cluster_fact "['name']")
  grep -qxF "archive_command = '/usr/local/sbin/pitr-archive-wal-$name \"%p\" \"%f\"'" "$PGDATA/pitr-bundle.conf"
  cmp "$SANDBOX/sbin/helper" "$(cluster_file pitr-archive-wal.sh)"
  [ "$(stat -c '%U %G %a' "$SANDBOX/sbin/helper")" = "root root 755" ]
  # installed before the server starts: its first archive_command call finds it
  helper_line=$(grep -n "^install .*$SANDBOX/sbin/helper" "$STUB_LOG" | head -n1 | cut -d: -f1)
  start_line=$(grep -n "pg_ctl .* start" "$STUB_LOG" | head -n1 | cut -d: -f1)
  [ -n "$helper_line" ] && [ "$helper_line" -lt "$start_line" ]
  : >"$STUB_LOG"
  run -0 "$STANDBY_SCRIPT"
  [[ $output == *"$SANDBOX/sbin/helper: already installed"* ]]
  [ -z "$(calls '^(install|chown)')" ]
}

@test "standby (archive.method standby): the archive folders and the NFS path's day folders become the standby user's" {
  [[ $ARCHIVE_METHOD == standby ]] || skip "this cluster's primary archives over NFS"
  user=$(cluster_fact "['user']")
  mkdir -p "$SANDBOX/pg_arch/arch/2026-01-01"
  run -0 "$STANDBY_SCRIPT" --no-start
  [ "$(stat -c '%U %G %a' "$SANDBOX/pg_arch")" = "$user $user 2750" ]
  [ "$(stat -c '%U %G %a' "$SANDBOX/pg_arch/arch")" = "$user $user 2750" ]
  calls "^chown -- $user:$user $SANDBOX/pg_arch/arch/2026-01-01\$" | grep -q .
}

@test "standby (archive.method standby): a helper that differs from the bundle's SHA256SUMS is refused, nothing started" {
  [[ $ARCHIVE_METHOD == standby ]] || skip "this cluster's primary archives over NFS"
  tls_ca_file  # the world's TLS_REBASE is an array: setup_file's arrays do not reach the tests
  copy=$(bundle_copy)
  echo "# tampered" >>"$copy/$(query "[f['path'] for f in m['files'] if f['path'].endswith('/pitr-archive-wal.sh') and f['cluster'] == '$(cluster_fact "['name']")'][0]")"
  script=$(rebase "$copy/${STANDBY_IN_BUNDLE#"$BUNDLE"/}" OS_HOME="$SANDBOX/home" PGDATA="$PGDATA" \
    PGHOME="$SANDBOX/pghome" LOG_DIR="$SANDBOX/log" "${TLS_REBASE[@]}" \
    "INSTALLER_PATH=$copy/${STANDBY_IN_BUNDLE#"$BUNDLE"/}" "ARCHIVE=$SANDBOX/pg_arch/arch" "HELPER=$SANDBOX/sbin/helper")
  run -3 "$script"
  [[ $output == *"does not match the bundle's SHA256SUMS"* ]]
  [ ! -e "$SANDBOX/sbin/helper" ]
  [ -z "$(calls 'pg_ctl .* start')" ]
}
