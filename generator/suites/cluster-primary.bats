#!/usr/bin/env bats
# The primary-side script (role "primary") and the archive helper it installs.

load test_helper

setup() {
  setup_stubs
  fake_ownership
  fake_users
  PG_USER=$(cluster_fact "['primary']['os_user']")
  echo "$PG_USER:x:26:26::/var/lib/pgsql:/bin/bash" >>"$SANDBOX/.passwd"
  DATA=$SANDBOX/pgdata
  mkdir -p "$DATA" "$SANDBOX/sbin" "$SANDBOX/units" "$SANDBOX/sudoers.d"
  echo 15 >"$DATA/PG_VERSION"
  printf 'port = 5432\n' >"$DATA/postgresql.conf"
  printf 'local all all peer\n' >"$DATA/pg_hba.conf"
  stub systemctl '[[ $1 == is-enabled ]] && exit 1; exit 0'
  stub mount
  stub visudo 'exit 0'
  PRIMARY_SCRIPT=$(rebase "$(script_of primary "$(cluster_fact "['name']")")" \
    HELPER="$SANDBOX/sbin/pitr-archive-wal" MOUNT_SCRIPT="$SANDBOX/sbin/pitr-archive-mount" \
    UNIT_FILE="$SANDBOX/units/pitr-archive-mount.service" SUDOERS_FILE="$SANDBOX/sudoers.d/pitr" \
    RC_LOCAL="$SANDBOX/rc.local" DEFAULT_DATA_DIR="$DATA")
  HELPER_IN_BUNDLE=$BUNDLE/$(query "[f['path'] for f in m['files'] if f['cluster'] == '$(cluster_fact "['name']")' and f['path'].endswith('pitr-archive-wal.sh')][0]")
}

@test "primary: installs the archive helper, the boot mount service, the sudo rule and mounts" {
  run -0 "$PRIMARY_SCRIPT"
  cmp "$SANDBOX/sbin/pitr-archive-wal" "$HELPER_IN_BUNDLE"
  [ "$(stat -c '%U %G %a' "$SANDBOX/sbin/pitr-archive-wal")" = "root root 755" ]
  grep -q "^ExecStart=$SANDBOX/sbin/pitr-archive-mount\$" "$SANDBOX/units/pitr-archive-mount.service"
  calls '^systemctl enable pitr-archive-mount.service$' | grep -q .
  calls "^$SANDBOX/sbin/pitr-archive-mount\$" | grep -q . || calls "pitr-archive-mount" | grep -q .
  grep -q "NOPASSWD: " "$SANDBOX/sudoers.d/pitr"
  [ "$(stat -c '%U %G %a' "$SANDBOX/sudoers.d/pitr")" = "root root 440" ]
  calls '^visudo -c -q -f ' | grep -q .
}

@test "primary: the sudo rule is not installed when visudo rejects it" {
  stub visudo 'exit 1'
  run -1 "$PRIMARY_SCRIPT"
  [[ $output == *"visudo rejects the generated sudo rule"* ]]
  [ ! -e "$SANDBOX/sudoers.d/pitr" ]
}

@test "primary: archive settings are included once and pg_hba allows the backup host" {
  run -0 "$PRIMARY_SCRIPT"
  [ "$(grep -cxF "include 'pitr-archive.conf'" "$DATA/postgresql.conf")" -eq 1 ]
  grep -qxF "archive_mode = 'on'" "$DATA/pitr-archive.conf"
  grep -q "^host replication $(cluster_fact "['replication_user']") " "$DATA/pg_hba.conf"
  grep -qx 'local all all peer' "$DATA/pg_hba.conf"
  [[ $output == *"restart the primary if archive_mode was off"* ]]
}

@test "primary: a second run changes nothing" {
  run -0 "$PRIMARY_SCRIPT"
  stub systemctl 'exit 0'
  cp "$DATA/postgresql.conf" "$BATS_TEST_TMPDIR/conf.before"
  : >"$STUB_LOG"
  run -0 "$PRIMARY_SCRIPT" --no-mount
  [ -z "$(calls '^(install|systemctl (enable|daemon-reload)|chown)')" ]
  cmp "$DATA/postgresql.conf" "$BATS_TEST_TMPDIR/conf.before"
}

@test "primary: --dry-run changes nothing" {
  run -0 "$PRIMARY_SCRIPT" --dry-run
  [ ! -e "$SANDBOX/sbin/pitr-archive-wal" ]
  [ -z "$(calls '^(install|systemctl enable|mount)')" ]
  ! grep -q pitr-archive "$DATA/postgresql.conf"
}

archive_helper() {
  mkdir -p "$SANDBOX/archive/arch" "$SANDBOX/pgdata/pg_wal"
  stub mountpoint 'exit 0'
  rebase "$HELPER_IN_BUNDLE" ARCHIVE="$SANDBOX/archive/arch"
}

@test "archive helper: copies a WAL file into today's UTC folder" {
  helper=$(archive_helper)
  cd "$SANDBOX/pgdata"
  echo wal1 >pg_wal/000000010000000000000001
  chmod 0600 pg_wal/000000010000000000000001
  run -0 "$helper" pg_wal/000000010000000000000001 000000010000000000000001
  archived=$SANDBOX/archive/arch/$(TZ=UTC date +%F)/000000010000000000000001
  cmp pg_wal/000000010000000000000001 "$archived"
  # readable by the standby's user through the folder's group, whatever pg_wal's mode
  [ "$(/usr/bin/stat -c %a "$archived")" = 640 ]
  [ -z "$(find "$SANDBOX/archive" -name '*.tmp')" ]
}

@test "archive helper: never overwrites; the same content again is success" {
  helper=$(archive_helper)
  cd "$SANDBOX/pgdata"
  echo wal1 >pg_wal/000000010000000000000001
  run -0 "$helper" pg_wal/000000010000000000000001 000000010000000000000001
  run -0 "$helper" pg_wal/000000010000000000000001 000000010000000000000001
  echo other >pg_wal/000000010000000000000001
  run -1 "$helper" pg_wal/000000010000000000000001 000000010000000000000001
  [[ $output == *"exists with other content: refusing to overwrite"* ]]
  [ "$(cat "$SANDBOX/archive/arch/"*/000000010000000000000001)" = wal1 ]
}

@test "archive helper: refuses names and paths that are not WAL files of this data directory" {
  helper=$(archive_helper)
  cd "$SANDBOX/pgdata"
  run -1 "$helper" /etc/shadow 000000010000000000000001
  run -1 "$helper" pg_wal/../../x 000000010000000000000001
  run -1 "$helper" pg_wal/x 'x;id'
  [ -z "$(ls -A "$SANDBOX/archive/arch")" ]
}

@test "archive helper: no queue limit unless the spec sets one" {
  grep -qxE 'readonly QUEUE_MAX=[0-9]+' "$HELPER_IN_BUNDLE"
}

@test "archive helper: past the queue limit it drops the file, counts it, logs loudly and reports success" {
  stub logger
  mkdir -p "$SANDBOX/pgdata/pg_wal/archive_status"
  stub mountpoint 'exit 0'
  # 16-byte "segments": a limit of 48 bytes is three waiting files
  helper=$(rebase "$HELPER_IN_BUNDLE" ARCHIVE="$SANDBOX/archive/arch" QUEUE_MAX=48 \
    DROPPED_FILE="$SANDBOX/state/dropped-wal")
  cd "$SANDBOX/pgdata"
  for n in 1 2 3 4; do
    printf '0123456789abcdef' >"pg_wal/00000001000000000000000$n"
  done
  touch pg_wal/archive_status/000000010000000000000001.ready pg_wal/archive_status/000000010000000000000002.ready
  # under the limit, and the archive is gone: a failure PostgreSQL retries
  run -1 "$helper" pg_wal/000000010000000000000001 000000010000000000000001
  [ ! -e "$SANDBOX/state/dropped-wal" ]
  touch pg_wal/archive_status/000000010000000000000003.ready pg_wal/archive_status/000000010000000000000004.ready
  run -0 "$helper" pg_wal/000000010000000000000001 000000010000000000000001
  [[ $output == *"DROPPED 000000010000000000000001, not archived: 4 WAL files (64 bytes) wait"* ]]
  run -0 "$helper" pg_wal/000000010000000000000002 000000010000000000000002
  read -r files bytes last _ <"$SANDBOX/state/dropped-wal"
  [ "$files $bytes $last" = "2 32 000000010000000000000002" ]
  [ "$(calls '^logger -p daemon.crit -t pitr-archive-wal -- DROPPED ' | wc -l)" -eq 2 ]
  [ ! -e "$SANDBOX/archive" ]
}

@test "archive mount: the export is mounted nosuid, nodev, noexec whatever the spec's options" {
  stub mountpoint 'exit 1'
  stub mount
  script=$(rebase "$BUNDLE/$(query "[f['path'] for f in m['files'] if f['cluster'] == '$(cluster_fact "['name']")' and f['path'].endswith('pitr-archive-mount.sh')][0]")" \
    MOUNTPOINT="$SANDBOX/pgarch")
  run -0 "$script"
  options=$(calls '^mount -t nfs -o ' | cut -d' ' -f5)
  [[ ,$options, == *,nosuid,* && ,$options, == *,nodev,* && ,$options, == *,noexec,* ]]
  # the last word wins in mount(8): nothing after them turns them off
  [[ $options == *,nosuid,nodev,noexec ]]
}
