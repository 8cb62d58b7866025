#!/usr/bin/env bats
# The primary-side script (role "primary"), which installs the archive helper and the archive
# mount (their own behaviour: cluster-archive-helper.bats); with archive.method standby neither,
# and it leaves the server's archiving alone.

# What this suite reads of its cluster, and all it sees of the bundle (generator/views.py):
# view roles: primary
# view facts: name postgres_major replication_slot replication_user replication_tls primary archive.method

load test_helper

make_world() {
  setup_stubs
  fake_ownership
  fake_users
  PG_USER=$(cluster_fact "['primary']['os_user']")
  echo "$PG_USER:x:26:26::/var/lib/pgsql:/bin/bash" >>"$SANDBOX/.passwd"
  fake_primary_server
  stub systemctl '[[ $1 == is-enabled ]] && exit 1; exit 0'
  stub mount
  stub visudo 'exit 0'
  PRIMARY_SCRIPT=$(primary_script)
  SLOT=$(query "facts['clusters'][${CLUSTER_INDEX:-0}]['replication_slot']")
  INCLUDE=$PG_ETC/pitr-archive.conf
  ARCHIVE_METHOD=$(cluster_fact "['archive']['method']")
  [[ $ARCHIVE_METHOD == standby ]] || HELPER_IN_BUNDLE=$(cluster_file pitr-archive-wal.sh)
}

# nfs_only: a test of what the NFS path installs or sets on the primary
nfs_only() {
  [[ $ARCHIVE_METHOD == nfs ]] || skip "archive.method standby: nothing of the NFS path on the primary"
}

setup_file() {
  world_setup_file make_world
}

setup() {
  world_reset
}

# hba_type: the replication lines' connection type: hostssl when the spec asks for TLS
hba_type() {
  if [[ -n $(cluster_fact "['replication_tls']") ]]; then echo hostssl; else echo host; fi
}

# nothing_installed: no helper, mount script, unit, sudo rule, include or hba change
nothing_installed() {
  [ ! -e "$SANDBOX/sbin/pitr-archive-wal" ]
  [ ! -e "$SANDBOX/sbin/pitr-archive-mount" ]
  [ ! -e "$SANDBOX/units/pitr-archive-mount.service" ]
  [ ! -e "$SANDBOX/sudoers.d/pitr" ]
  [ ! -e "$INCLUDE" ]
  ! grep -q pitr "$PG_ETC/postgresql.conf" "$PG_ETC/pg_hba.conf"
  [ -z "$(calls '^(install|systemctl (enable|daemon-reload)|mount|cp) ')" ]
}

@test "primary: installs the archive helper, the boot mount service, the sudo rule and mounts" {
  nfs_only
  run -0 "$PRIMARY_SCRIPT"
  cmp "$SANDBOX/sbin/pitr-archive-wal" "$HELPER_IN_BUNDLE"
  [ "$(stat -c '%U %G %a' "$SANDBOX/sbin/pitr-archive-wal")" = "root root 755" ]
  grep -q "^ExecStart=$SANDBOX/sbin/pitr-archive-mount\$" "$SANDBOX/units/pitr-archive-mount.service"
  grep -qx "Before=$(cluster_fact "['primary']['systemd_unit']")" "$SANDBOX/units/pitr-archive-mount.service"
  calls '^systemctl enable pitr-archive-mount.service$' | grep -q .
  calls "^$SANDBOX/sbin/pitr-archive-mount\$" | grep -q . || calls "pitr-archive-mount" | grep -q .
  grep -q "NOPASSWD: " "$SANDBOX/sudoers.d/pitr"
  [ "$(stat -c '%U %G %a' "$SANDBOX/sudoers.d/pitr")" = "root root 440" ]
  calls '^visudo -c -q -f ' | grep -q .
}

@test "primary: a sudo rule visudo rejects stops it before any change" {
  nfs_only
  stub visudo 'exit 1'
  run -3 "$PRIMARY_SCRIPT"
  [[ $output == *"visudo rejects the generated sudo rule"* ]]
  nothing_installed
}

@test "primary: the include lands beside the real postgresql.conf, the hba lines in the real pg_hba.conf" {
  run -0 "$PRIMARY_SCRIPT"
  [ "$(grep -cxF "include 'pitr-archive.conf'" "$PG_ETC/postgresql.conf")" -eq 1 ]
  [ ! -e "$PG_DATA/pitr-archive.conf" ]
  if [[ $ARCHIVE_METHOD == standby ]]; then
    ! grep -q "^archive_\(mode\|command\|library\) " "$INCLUDE" || false
  else
    grep -qxF "archive_mode = 'on'" "$INCLUDE"
    grep -q "^archive_command = '.*\"%p\" \"%f\"'\$" "$INCLUDE"
  fi
  grep -qx "wal_level = '\(replica\|hot_standby\)'" "$INCLUDE"
  grep -qxF "max_wal_senders = '2'" "$INCLUDE"
  grep -q "^$(hba_type) replication $(cluster_fact "['replication_user']") " "$PG_ETC/pg_hba.conf"
  grep -qx 'local all all peer' "$PG_ETC/pg_hba.conf"
  # the server's own files keep their modes (the fake install records owners, not modes)
  [ "$(/usr/bin/stat -c %a "$PG_ETC/pg_hba.conf")" = 640 ]
  [ "$(/usr/bin/stat -c %a "$PG_ETC/postgresql.conf")" = 644 ]
  [ "$(/usr/bin/stat -c %a "$INCLUDE")" = 644 ]
  [ ! -e "$PG_DATA/pg_hba.conf" ]
  [[ $output == *"needs a RESTART for: wal_level 'minimal' -> "* ]]
  [[ $output == *"needs a reload for: "*"pg_hba.conf lines"* ]]
  [ -z "$(calls '(pg_reload_conf|pg_ctl|systemctl restart)')" ]
}

@test "primary: never lowers what the server has: logical stays logical, more walsenders stay" {
  pg_setting wal_level logical postmaster "configuration file" "$PG_ETC/postgresql.conf"
  pg_setting archive_mode always postmaster "configuration file" "$PG_ETC/postgresql.conf"
  pg_setting max_wal_senders 20 postmaster "configuration file" "$PG_ETC/postgresql.conf"
  pg_setting max_replication_slots 7 postmaster "configuration file" "$PG_ETC/postgresql.conf"
  pg_fact senders_other 3
  run -0 "$PRIMARY_SCRIPT"
  ! grep -q '^wal_level' "$INCLUDE" || false
  ! grep -q '^archive_mode' "$INCLUDE" || false
  ! grep -q '^max_wal_senders' "$INCLUDE" || false
  ! grep -q '^max_replication_slots' "$INCLUDE" || false
  [[ $ARCHIVE_METHOD == standby ]] || grep -q '^archive_command' "$INCLUDE"
  [[ $output == *"wal_level = 'logical'"*"left as it is"* ]]
  [[ $output != *"RESTART"* ]]
}

@test "primary: archive_timeout and max_slot_wal_keep_size are capped; a stricter value stays" {
  timeout_needed=$(sed -n 's/^readonly ARCHIVE_TIMEOUT_NEEDED=//p' "$PRIMARY_SCRIPT")
  keep_needed=$(sed -n 's/^readonly SLOT_KEEP_NEEDED=//p' "$PRIMARY_SCRIPT")
  capped_slot=0
  grep -q '^readonly MANAGED=(.*max_slot_wal_keep_size' "$PRIMARY_SCRIPT" && capped_slot=1
  # none at all (archive_timeout 0, max_slot_wal_keep_size -1): the caps are written
  run -0 "$PRIMARY_SCRIPT"
  grep -qxF "archive_timeout = '$timeout_needed'" "$INCLUDE"
  if ((capped_slot)); then grep -qxF "max_slot_wal_keep_size = '$keep_needed'" "$INCLUDE"; fi
  # stricter ones, as the primary's own configuration writes them, are left as they are
  pg_setting archive_timeout "$((timeout_needed - 1))" sighup "configuration file" "$PG_ETC/postgresql.conf"
  pg_fact "base:archive_timeout" "$((timeout_needed - 1))s"
  pg_setting max_slot_wal_keep_size "$((keep_needed - 1))" sighup "configuration file" "$PG_ETC/postgresql.conf"
  pg_fact "base:max_slot_wal_keep_size" "$((keep_needed - 1))MB"
  rm -f "$INCLUDE"
  run -0 "$PRIMARY_SCRIPT" --no-mount
  ! grep -q '^archive_timeout' "$INCLUDE" || false
  ! grep -q '^max_slot_wal_keep_size' "$INCLUDE" || false
  [[ $output == *"archive_timeout = '$((timeout_needed - 1))s'"*"left as it is"* ]]
  # looser ones in other units (1h; 1TB) are brought down to the caps
  pg_fact "base:archive_timeout" 1h
  pg_fact "base:max_slot_wal_keep_size" 1TB
  run -0 "$PRIMARY_SCRIPT" --no-mount
  grep -qxF "archive_timeout = '$timeout_needed'" "$INCLUDE"
  if ((capped_slot)); then grep -qxF "max_slot_wal_keep_size = '$keep_needed'" "$INCLUDE"; fi
}

@test "primary: walsenders rise to what others use plus the standby's two, never below the include's" {
  pg_setting max_wal_senders 3 postmaster "configuration file" "$PG_ETC/postgresql.conf"
  pg_fact senders_other 4
  run -0 "$PRIMARY_SCRIPT"
  grep -qxF "max_wal_senders = '6'" "$INCLUDE"
  pg_fact senders_other 0
  run -0 "$PRIMARY_SCRIPT" --no-mount
  grep -qxF "max_wal_senders = '6'" "$INCLUDE"
}

@test "primary: another archive_command is refused by name and nothing changes; the flag replaces it" {
  nfs_only
  pg_setting archive_mode on postmaster "configuration file" "$PG_ETC/postgresql.conf"
  pg_setting archive_command "pgbackrest --stanza=main archive-push %p" sighup "configuration file" "$PG_ETC/postgresql.conf"
  run -3 "$PRIMARY_SCRIPT"
  [[ $output == *"archive_command = 'pgbackrest --stanza=main archive-push %p'"* ]]
  [[ $output == *"--replace-archive-command"* ]]
  nothing_installed
  run -0 "$PRIMARY_SCRIPT" --replace-archive-command
  grep -q '^archive_command = .*pitr-archive-wal' "$INCLUDE"
  [[ $output == *"replacing archive_command = 'pgbackrest"* ]]
  # accepted once: a re-run without the flag keeps it
  run -0 "$PRIMARY_SCRIPT" --no-mount
  grep -q '^archive_command = .*pitr-archive-wal' "$INCLUDE"
}

@test "primary: a value set by ALTER SYSTEM below the need is refused: the include could not win" {
  pg_setting max_wal_senders 1 postmaster "configuration file" "$PG_DATA/postgresql.auto.conf"
  run -3 "$PRIMARY_SCRIPT"
  [[ $output == *"max_wal_senders = '1' is set by ALTER SYSTEM"* ]]
  nothing_installed
}

@test "primary: a server that does not answer is refused; --no-postgres installs only the node's pieces" {
  nfs_only
  touch "$SANDBOX/.pg/.down"
  run -3 "$PRIMARY_SCRIPT"
  [[ $output == *"no PostgreSQL answers on port"* ]]
  nothing_installed
  run -0 "$PRIMARY_SCRIPT" --no-postgres
  [ -e "$SANDBOX/sbin/pitr-archive-wal" ]
  [ ! -e "$INCLUDE" ]
}

@test "primary: a server of another major on the port is refused" {
  pg_fact version 80417
  run -3 "$PRIMARY_SCRIPT"
  [[ $output == *"runs PostgreSQL 80417"* ]]
  nothing_installed
}

@test "primary: --restart restarts with the server's own pg_ctl, the values take effect, the slot is made" {
  run -0 "$PRIMARY_SCRIPT" --restart
  calls "^pg_ctl restart -D $PG_DATA -m fast -w -t 300 -l $SANDBOX/server.log\$" | grep -q .
  # (archive.method standby: the server's archive_mode is not the bundle's)
  [[ $ARCHIVE_METHOD == standby ]] || [ "$(cat "$SANDBOX/.pg/cur:archive_mode")" = on ]
  [[ $output == *"now runs with the planned settings"* ]]
  if [[ -n $SLOT ]]; then
    [ "$(cat "$SANDBOX/.pg/slot")" = physical ]
    [[ $output == *"keeps this server's WAL until the standby has it"* ]]
  fi
  : >"$STUB_LOG"
  run -0 "$PRIMARY_SCRIPT" --restart --no-mount
  [ -z "$(calls '(pg_ctl|pg_reload_conf|pg_create_physical_replication_slot)')" ]
  [[ $output == *"already in effect"* ]]
  [[ -z $SLOT || $output == *"replication slot $SLOT: already present"* ]]
}

@test "primary: on the HA partner (in recovery) the slot is made too, reserving no WAL" {
  [[ -n $SLOT ]] || skip "this cluster streams through no slot"
  pg_fact recovery yes
  pg_setting wal_level replica postmaster "configuration file" "$PG_ETC/postgresql.conf"
  pg_setting max_replication_slots 10 postmaster "configuration file" "$PG_ETC/postgresql.conf"
  run -0 "$PRIMARY_SCRIPT" --dry-run
  [ ! -e "$SANDBOX/.pg/slot" ]
  [ -z "$(calls pg_create_physical_replication_slot)" ]
  run -0 "$PRIMARY_SCRIPT"
  [ "$(cat "$SANDBOX/.pg/slot")" = physical ]
  calls "pg_create_physical_replication_slot\('$SLOT'\) where not exists" | grep -q .
  [ -z "$(calls "pg_create_physical_replication_slot\('$SLOT', true\)")" ]
  [[ $output == *"made on this node in recovery, reserving no WAL"* ]]
  : >"$STUB_LOG"
  run -0 "$PRIMARY_SCRIPT" --no-mount
  [[ $output == *"replication slot $SLOT: already present"* ]]
  [ -z "$(calls pg_create_physical_replication_slot)" ]
}

@test "primary: --restart is refused when PostgreSQL runs under another systemd unit" {
  echo "0::/system.slice/postgresql@99-other.service" >"$SANDBOX/proc/4242/cgroup"
  run -3 "$PRIMARY_SCRIPT" --restart
  [[ $output == *"runs under postgresql@99-other.service"* ]]
  nothing_installed
}

@test "primary: under the spec's systemd unit, --restart restarts that unit" {
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub systemctl '[[ $1 == is-enabled ]] && exit 1; [[ $1 == restart ]] && "$SANDBOX/pgbin/apply-include" all; exit 0'
  echo "0::/system.slice/$(cluster_fact "['primary']['systemd_unit']")" >"$SANDBOX/proc/4242/cgroup"
  run -0 "$PRIMARY_SCRIPT" --restart
  calls "^systemctl restart $(cluster_fact "['primary']['systemd_unit']")\$" | grep -q .
  [ -z "$(calls '^pg_ctl')" ]
}

@test "primary: --reload reloads when only reloadable settings change" {
  pg_setting wal_level logical postmaster "configuration file" "$PG_ETC/postgresql.conf"
  pg_setting archive_mode on postmaster "configuration file" "$PG_ETC/postgresql.conf"
  pg_setting max_wal_senders 10 postmaster "configuration file" "$PG_ETC/postgresql.conf"
  pg_setting max_replication_slots 10 postmaster "configuration file" "$PG_ETC/postgresql.conf"
  run -0 "$PRIMARY_SCRIPT" --reload
  calls 'pg_reload_conf' | grep -q .
  [ -z "$(calls '^pg_ctl')" ]
  [[ $ARCHIVE_METHOD == standby ]] || grep -q pitr-archive-wal "$SANDBOX/.pg/cur:archive_command"
}

@test "primary: a second run changes nothing" {
  run -0 "$PRIMARY_SCRIPT"
  stub systemctl 'exit 0'
  cp "$PG_ETC/postgresql.conf" "$BATS_TEST_TMPDIR/conf.before"
  cp "$INCLUDE" "$BATS_TEST_TMPDIR/include.before"
  : >"$STUB_LOG"
  run -0 "$PRIMARY_SCRIPT" --no-mount
  [ -z "$(calls '^(install|systemctl (enable|daemon-reload)|chown|cp) ')" ]
  cmp "$PG_ETC/postgresql.conf" "$BATS_TEST_TMPDIR/conf.before"
  cmp "$INCLUDE" "$BATS_TEST_TMPDIR/include.before"
}

@test "primary: --dry-run changes nothing" {
  run -0 "$PRIMARY_SCRIPT" --dry-run --restart
  nothing_installed
  [ -z "$(calls '(pg_ctl|pg_reload_conf|pg_create)')" ]
  [[ $output == *"dry-run: would write $INCLUDE"* ]]
}

# sync_names_asked: the script reads synchronous_standby_names (9.1+; 9.0 has none)
sync_names_asked() {
  grep -qF "current_setting('synchronous_standby_names')" "$PRIMARY_SCRIPT"
}

@test "primary: synchronous_standby_names that would match the backup standby is refused with what to write" {
  app=$(cluster_fact "['name']")
  if ! sync_names_asked; then
    # 9.0: no synchronous replication, nothing asked
    run -0 "$PRIMARY_SCRIPT"
    [[ $output != *synchronous_standby_names* ]]
    return 0
  fi
  pg_fact other_standbys "s1, s2"
  local value instead
  while IFS='|' read -r value instead; do
    pg_fact sync_names "$value"
    run -3 "$PRIMARY_SCRIPT"
    [[ $output == *"REFUSED: synchronous_standby_names = '$value' matches the backup standby's application_name $app"* ]]
    [[ $output == *"write synchronous_standby_names = $instead, reload"* ]]
    nothing_installed
  done <<LIST
*|'FIRST 1 (<the synchronous standby's application_name>)', or '' for none
$app|''
s1, ${app^^}|'s1'
FIRST 1 (s1, "${app^^}")|'FIRST 1 (s1)'
any 2 (s1,$app , "s 2")|'ANY 2 (s1, "s 2")'
2 ($app, s1)|'1 (s1)'
s1, *|'s1'
LIST
  pg_fact sync_names '*'
  run -3 "$PRIMARY_SCRIPT"
  [[ $output == *"standbys streaming now besides the backup host: s1, s2"* ]]
}

@test "primary: synchronous_standby_names that cannot match the backup standby is left alone" {
  sync_names_asked || skip "PostgreSQL before 9.1 has no synchronous replication"
  app=$(cluster_fact "['name']")
  local value
  while IFS= read -r value; do
    pg_fact sync_names "$value"
    rm -f "$INCLUDE"
    run -0 "$PRIMARY_SCRIPT" --no-mount
    [[ $output != *REFUSED* ]]
    [ -e "$INCLUDE" ]
  done <<LIST
s1, ${app}x
FIRST 1 ("$app ", s1)
ANY 1 (first_standby, any1)
first 1 (s1)
 
LIST
}

@test "primary: the helper's state folder is readable to the server's group, an existing counter too" {
  nfs_only
  local owner=root
  grep -q '^readonly USE_SUDO=1' "$PRIMARY_SCRIPT" || owner=$PG_USER
  run -0 "$PRIMARY_SCRIPT" --no-postgres
  [ "$(stat -c '%U %G %a' "$SANDBOX/state")" = "$owner $PG_USER 2750" ]
  : >"$STUB_LOG"
  run -0 "$PRIMARY_SCRIPT" --no-postgres
  [[ $output == *"$SANDBOX/state: already owned by $owner:$PG_USER, mode 2750"* ]]
  [ -z "$(calls '^install -d')" ]
  # a counter the helper wrote before (root's group): handed to the server's group
  echo "1 16777216 000000010000000000000003 2026-12-01T00:00:00Z" >"$SANDBOX/state/$(cluster_fact "['name']")-dropped-wal"
  stub chgrp
  run -0 "$PRIMARY_SCRIPT" --no-postgres
  calls "^chgrp -- $PG_USER $SANDBOX/state/.*-dropped-wal\$" | grep -q .
  : >"$STUB_LOG"
  run -0 "$PRIMARY_SCRIPT" --no-postgres --dry-run
  [ -z "$(calls '^(chgrp|chmod|install) ')" ]
}

@test "primary: TLS asked for and the server's ssl off: refused with what to set, nothing changed" {
  [[ $(hba_type) == hostssl ]] || skip "the spec asks for no TLS"
  pg_fact ssl off
  run -3 "$PRIMARY_SCRIPT"
  [[ $output == *"REFUSED: ssl = 'off' on this server, but the spec asks for TLS for replication"* ]]
  [[ $output == *"Set ssl = on, ssl_cert_file and ssl_key_file"* ]]
  [[ $output == *"nothing was changed"* ]]
  nothing_installed
  # on: the lines are hostssl only, never a host line that would let clear text in
  pg_fact ssl on
  run -0 "$PRIMARY_SCRIPT"
  grep -q "^hostssl replication " "$PG_ETC/pg_hba.conf"
  ! grep -q "^host replication " "$PG_ETC/pg_hba.conf" || false
}

@test "primary: no TLS asked for: host lines, and the server's ssl is never asked" {
  [[ $(hba_type) == host ]] || skip "the spec asks for TLS"
  pg_fact ssl off
  run -0 "$PRIMARY_SCRIPT"
  grep -q "^host replication " "$PG_ETC/pg_hba.conf"
  ! grep -q "current_setting('ssl')" "$PRIMARY_SCRIPT" || false
}

@test "primary (archive.method standby): installs nothing on the node and leaves another archive_command alone" {
  [[ $ARCHIVE_METHOD == standby ]] || skip "this cluster's primary archives over NFS"
  pg_setting archive_mode on postmaster "configuration file" "$PG_ETC/postgresql.conf"
  pg_setting archive_command "pgbackrest --stanza=main archive-push %p" sighup "configuration file" "$PG_ETC/postgresql.conf"
  run -0 "$PRIMARY_SCRIPT"
  [[ $output != *"archive_command"* ]]
  [ -z "$(calls '^(systemctl (enable|daemon-reload)|mount|visudo) ')" ]
  [ ! -e "$SANDBOX/sbin/pitr-archive-wal" ]
  [ ! -e "$SANDBOX/sudoers.d/pitr" ]
  [[ $output != *"archive helper"* && $output != *"sudo rule"* && $output != *"mount"* ]]
  grep -qxF "archive_timeout = '60'" "$INCLUDE"
  ! grep -q "^archive_\(mode\|command\|library\) " "$INCLUDE" || false
}

# role_attribute: what the role needs beside LOGIN (9.0 streams to superusers only)
role_attribute() {
  if [[ $(cluster_fact "['postgres_major']") == 9.0 ]]; then echo SUPERUSER; else echo REPLICATION; fi
}

@test "primary: a missing replication role is made with the password given, on psql's standard input, in a session that logs nothing" {
  [[ $(role_attribute) == REPLICATION ]] || skip "PostgreSQL 9.0: the role must be a superuser, made by hand (next test)"
  local role password="it's a \\ test; \$(touch $SANDBOX/ran)"
  role=$(cluster_fact "['replication_user']")
  rm "$SANDBOX/.pg/role"
  PITR_REPLICATION_PASSWORD=$password run -0 "$PRIMARY_SCRIPT" --dry-run
  [[ $output == *"dry-run: would create role $role (LOGIN REPLICATION, with the password given) (from PITR_REPLICATION_PASSWORD)"* ]]
  [ ! -e "$SANDBOX/.pg/.role-sql" ]
  [ ! -e "$SANDBOX/.pg/role" ]
  PITR_REPLICATION_PASSWORD=$password run -0 "$PRIMARY_SCRIPT"
  [[ $output == *"create role $role (LOGIN REPLICATION, with the password given): done"* ]]
  [[ $output != *"$password"* ]]
  # never on a command line, never run
  [ -z "$(calls 'touch|test;')" ]
  [ ! -e "$SANDBOX/ran" ]
  grep -qxF "SET log_statement = 'none';" "$SANDBOX/.pg/.role-sql"
  grep -qxF "SET log_min_error_statement = 'panic';" "$SANDBOX/.pg/.role-sql"
  grep -qxF "SET synchronous_commit = 'local';" "$SANDBOX/.pg/.role-sql"
  grep -qxF "CREATE ROLE \"$role\" WITH LOGIN REPLICATION PASSWORD E'it''s a \\\\ test; \$(touch $SANDBOX/ran)';" "$SANDBOX/.pg/.role-sql"
  if grep -q '^hostssl\? replication .* scram-sha-256$' "$PG_ETC/pg_hba.conf"; then
    grep -qxF "SET password_encryption = 'scram-sha-256';" "$SANDBOX/.pg/.role-sql"
  fi
  # a re-run finds it and changes nothing
  rm "$SANDBOX/.pg/.role-sql"
  run -0 "$PRIMARY_SCRIPT"
  [[ $output == *"role $role: present"* ]]
  [ ! -e "$SANDBOX/.pg/.role-sql" ]
}

@test "primary: a missing role without a password to give it (no terminal), or on 9.0, is refused before any change" {
  rm "$SANDBOX/.pg/role"
  run -3 "$PRIMARY_SCRIPT" </dev/null
  if [[ $(role_attribute) == SUPERUSER ]]; then
    [[ $output == *"PostgreSQL 9.0 streams to superusers only, which this script does not create"* ]]
  else
    [[ $output == *"no password to give it: set PITR_REPLICATION_PASSWORD"* ]]
  fi
  [[ $output == *"nothing was changed"* ]]
  nothing_installed
  [ ! -e "$SANDBOX/.pg/.role-sql" ]
}

@test "primary: a role that cannot log in, cannot stream or has no password is refused with what to run; --set-password sets one" {
  local role
  role=$(cluster_fact "['replication_user']")
  pg_fact role "nologin nosuper replication password"
  run -3 "$PRIMARY_SCRIPT"
  [[ $output == *"role $role cannot log in: ALTER ROLE $role LOGIN"* ]]
  nothing_installed
  if [[ $(role_attribute) == SUPERUSER ]]; then
    pg_fact role "login nosuper noreplication password"
    run -3 "$PRIMARY_SCRIPT"
    [[ $output == *"role $role is not a superuser, and PostgreSQL 9.0 streams to superusers only"* ]]
    pg_fact role "login super noreplication nopassword"
  else
    pg_fact role "login nosuper noreplication password"
    run -3 "$PRIMARY_SCRIPT"
    [[ $output == *"role $role lacks REPLICATION: ALTER ROLE $role REPLICATION"* ]]
    pg_fact role "login nosuper replication nopassword"
  fi
  nothing_installed
  run -3 "$PRIMARY_SCRIPT"
  [[ $output == *"role $role has no password, and the pg_hba.conf lines ask for one"*"--set-password"* ]]
  nothing_installed
  PITR_REPLICATION_PASSWORD=new run -0 "$PRIMARY_SCRIPT" --set-password
  grep -qxF "ALTER ROLE \"$role\" WITH PASSWORD E'new';" "$SANDBOX/.pg/.role-sql"
  [[ $(cat "$SANDBOX/.pg/role") == *" password" ]]
}

@test "primary: on the HA partner (in recovery) a missing role is left to replication from the primary" {
  pg_fact recovery yes
  rm "$SANDBOX/.pg/role"
  run -0 "$PRIMARY_SCRIPT"
  [[ $output == *"roles come from the primary by replication; run this step on the primary"* ]]
  [ ! -e "$SANDBOX/.pg/.role-sql" ]
  run -3 "$PRIMARY_SCRIPT" --set-password
  [[ $output == *"--set-password: this node is in recovery (read-only)"* ]]
}

@test "primary (archive.method standby): a node of the NFS path is moved off it once the backup standby streams, with --restart" {
  [[ $ARCHIVE_METHOD == standby ]] || skip "this cluster's primary archives over NFS"
  local name
  name=$(cluster_fact "['name']")
  nfs_era "$name"
  # systemd: the mount unit enabled; the mount answers (stubs: mountpoint exit 0)
  stub systemctl '[[ $1 == is-enabled ]] && exit 0; exit 0'
  stub mountpoint 'exit 0'
  stub umount
  pg_fact slot physical
  pg_fact slot_active noactive
  # the backup standby not streaming yet: refused, nothing changed
  run -3 "$PRIMARY_SCRIPT" --restart
  [[ $output == *"the backup standby does not stream through slot $SLOT now: run this bundle's 60-standby.sh"* ]]
  grep -q "^archive_command" "$INCLUDE"
  [ -e "$SANDBOX/sbin/pitr-archive-wal" ]
  # streaming, but no --restart: refused, nothing changed
  pg_fact slot_active active
  run -3 "$PRIMARY_SCRIPT"
  [[ $output == *"archive_mode needs a restart: run this again with --restart"* ]]
  grep -q "^archive_command" "$INCLUDE"
  # archive_mode on in postgresql.conf itself, with no command of its own: refused
  pg_fact "base:archive_mode" on
  run -3 "$PRIMARY_SCRIPT" --restart
  [[ $output == *"the server would keep every WAL file; set archive_mode = off there"* ]]
  pg_fact "base:archive_mode" off
  # a dry run says what it would do and changes nothing
  : >"$STUB_LOG"
  run -0 "$PRIMARY_SCRIPT" --restart --dry-run
  [[ $output == *"moves $name off it"* ]]
  [ -z "$(calls '^(pg_ctl|rm|umount|systemctl (disable|daemon-reload)|install) ')" ]
  grep -q "^archive_command" "$INCLUDE"
  # moved: the include without the archive lines, restarted, the pieces gone
  run -0 "$PRIMARY_SCRIPT" --restart
  ! grep -q "^archive_\(mode\|command\)" "$INCLUDE" || false
  calls "^pg_ctl restart " | grep -q .
  [ "$(cat "$SANDBOX/.pg/cur:archive_mode")" = off ]
  calls "^systemctl disable pitr-archive-mount.service\$" | grep -q .
  calls "^umount -- $SANDBOX/pgarch\$" | grep -q .
  for piece in sbin/pitr-archive-wal sbin/pitr-archive-mount units/pitr-archive-mount.service sudoers.d/pitr; do
    [ ! -e "$SANDBOX/$piece" ]
  done
  ! grep -q "pitr-bundle $name" "$SANDBOX/rc.local" || false
  [[ $output == *"no longer archives over NFS from this node"* ]]
  # a re-run: nothing of the NFS path left, nothing to move
  : >"$STUB_LOG"
  run -0 "$PRIMARY_SCRIPT"
  [[ $output != *"NFS path of an earlier bundle"* ]]
  [ -z "$(calls '^(pg_ctl|rm|umount) ')" ]
}
