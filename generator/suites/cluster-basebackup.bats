#!/usr/bin/env bats
# The base backup script (role "basebackup"), with PGDATA in a sandbox and stub binaries.

# What this suite reads of its cluster, and all it sees of the bundle (generator/views.py):
# view roles: basebackup
# view facts: name user dataset primary.address primary.port replication_user replication_tls

load test_helper

make_world() {
  setup_cluster_user
  mkdir -p "$SANDBOX/mnt/pg_root" "$SANDBOX/home"
  # the major the fake backup says: any (50-basebackup.sh reads none: the same text for all)
  FAKE_BACKUP_MAJOR=16
  fake_pghome "$SANDBOX/pghome" "$FAKE_BACKUP_MAJOR"
  tls_ca_file
  BACKUP_SCRIPT=$(rebase "$(cluster_script basebackup)" OS_HOME="$SANDBOX/home" \
    PGDATA="$SANDBOX/mnt/pg_root" PGHOME="$SANDBOX/pghome" ?STAGING="$SANDBOX/mnt/.basebackup" \
    ARCHIVE="$SANDBOX/arch" GENERATIONS="$SANDBOX/generations" "${TLS_REBASE[@]}")
  mkdir -p "$SANDBOX/arch"
  export PITR_REPLICATION_PASSWORD='s3cret:with\colon'
  stub rsync
  stub ssh
  # the primary's system identifier, as pg_controldata reads it from the backup
  echo 7301234567890123456 >"$SANDBOX/primary-sysid"
  STUB_TARGET=$SANDBOX/pghome/bin stub pg_controldata \
    "echo \"Database system identifier:           \$(cat $(printf %q "$SANDBOX/primary-sysid"))\""
  DATASET=$(cluster_fact "['dataset']")
  "$STUB_BIN/zpool" create "${DATASET%%/*}" mirror /dev/a /dev/b
  "$STUB_BIN/zfs" create -p -o mountpoint=/x "$DATASET"
}

setup_file() {
  world_setup_file make_world
}

setup() {
  world_reset
}

uses_pg_basebackup() {
  grep -q '^readonly BASEBACKUP_OPTIONS=' "$BACKUP_SCRIPT"
}

@test "basebackup: takes a tar backup from the primary and unpacks it into PGDATA" {
  uses_pg_basebackup || skip "this cluster's version predates pg_basebackup (pg_start_backup method)"
  run -0 "$BACKUP_SCRIPT"
  host=$(cluster_fact "['primary']['address']")
  port=$(cluster_fact "['primary']['port']")
  calls "^pg_basebackup -h $host -p $port -U $(cluster_fact "['replication_user']") -D $SANDBOX/mnt/.basebackup -F t " | grep -q .
  [ "$(cat "$SANDBOX/mnt/pg_root/PG_VERSION")" = "$FAKE_BACKUP_MAJOR" ]
  [ ! -e "$SANDBOX/mnt/.basebackup" ]
}

@test "basebackup: tablespaces become folders inside pg_tblspc, not symlinks" {
  uses_pg_basebackup || skip "this cluster's version predates pg_basebackup"
  run -0 "$BACKUP_SCRIPT"
  [ -d "$SANDBOX/mnt/pg_root/pg_tblspc/16385" ]
  [ ! -L "$SANDBOX/mnt/pg_root/pg_tblspc/16385" ]
  [ "$(cat "$SANDBOX/mnt/pg_root/pg_tblspc/16385/PG_DATA")" = data ]
}

@test "basebackup: the replication password goes to ~/.pgpass (0600), escaped, never to the log" {
  run -0 "$BACKUP_SCRIPT"
  [ "$(stat -c %a "$SANDBOX/home/.pgpass")" = 600 ]
  grep -qF ":$(cluster_fact "['replication_user']"):s3cret\\:with\\\\colon" "$SANDBOX/home/.pgpass"
  [[ $output != *s3cret* ]]
  ! grep -q s3cret "$STUB_LOG"
}

@test "basebackup: refuses a non-empty PGDATA without --force, replaces it with --force --yes" {
  echo old >"$SANDBOX/mnt/pg_root/old-file"
  run -3 "$BACKUP_SCRIPT"
  [[ $output == *"is not empty: run again with --force"* ]]
  [ -e "$SANDBOX/mnt/pg_root/old-file" ]
  [ -z "$(calls '^pg_basebackup')" ]
  run -4 "$BACKUP_SCRIPT" --force </dev/null
  [ -e "$SANDBOX/mnt/pg_root/old-file" ]
  uses_pg_basebackup || skip "the copy itself needs the primary over ssh"
  run -0 "$BACKUP_SCRIPT" --force --yes
  [ ! -e "$SANDBOX/mnt/pg_root/old-file" ]
}

@test "basebackup: never touches PGDATA while a server runs on it" {
  echo "$$" >"$SANDBOX/mnt/pg_root/postmaster.pid"
  run -3 "$BACKUP_SCRIPT" --force --yes
  [[ $output == *"a server is running"* ]]
  [ -e "$SANDBOX/mnt/pg_root/postmaster.pid" ]
}

@test "basebackup: --dry-run takes no backup and writes nothing" {
  run -0 "$BACKUP_SCRIPT" --dry-run
  [ -z "$(calls '^(pg_basebackup|psql|rsync|install|tar)')" ]
  [ -z "$(ls -A "$SANDBOX/mnt/pg_root")" ]
  [ ! -e "$SANDBOX/home/.pgpass" ]
}

@test "basebackup: a failing pg_basebackup stops the run with the step named" {
  uses_pg_basebackup || skip "this cluster's version predates pg_basebackup"
  STUB_TARGET=$SANDBOX/pghome/bin stub pg_basebackup 'echo "connection refused" >&2; exit 1'
  run -1 "$BACKUP_SCRIPT"
  [[ $output == *"step 'base backup from"*"failed"* ]]
}

@test "basebackup: before pg_basebackup existed: start backup, copy with rsync, stop backup" {
  ! uses_pg_basebackup || skip "this cluster's version has pg_basebackup"
  run -0 "$BACKUP_SCRIPT"
  [ "$(calls '^(psql|rsync)' | cut -c1-60 | sed 's/ .*select/ select/')" != "" ]
  calls "pg_start_backup" | grep -q .
  calls "^rsync -a --delete --copy-links " | grep -q .
  [ "$(calls '^(psql|rsync)' | grep -o 'pg_start_backup\|^rsync\|pg_stop_backup' | tr '\n' ' ')" = "pg_start_backup rsync pg_stop_backup " ]
}

@test "basebackup: a failed copy still ends backup mode on the primary" {
  ! uses_pg_basebackup || skip "this cluster's version has pg_basebackup"
  stub rsync 'exit 12'
  run -1 "$BACKUP_SCRIPT"
  calls "pg_stop_backup" | grep -q .
  [[ $output == *"backup mode ended on the primary"* ]]
}

verifies_backups() {
  grep -q 'pg_verifybackup" --manifest-path' "$BACKUP_SCRIPT"
}

# verify_stubs [BODY]: pg_verifybackup (BODY, else it checks that the manifest it is given is
# there) and pg_waldump beside it
verify_stubs() {
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  local body='[[ -f ${1#--manifest-path=} ]] || exit 9; echo "backup successfully verified"'
  STUB_TARGET=$SANDBOX/pghome/bin stub pg_verifybackup "${1:-$body}"
  STUB_TARGET=$SANDBOX/pghome/bin stub pg_waldump
}

@test "basebackup: verifies the unpacked backup and its WAL against the manifest, before the manifest goes" {
  verifies_backups || skip "no backup manifest before PostgreSQL 13"
  verify_stubs
  run -0 "$BACKUP_SCRIPT"
  calls "^pg_verifybackup --manifest-path=$SANDBOX/mnt/.basebackup/backup_manifest --ignore=.pitr-bundle-basebackup-incomplete $SANDBOX/mnt/pg_root$" | grep -q .
  [[ $output == *"step: verify the backup against its manifest"* ]]
  [ ! -e "$SANDBOX/mnt/.basebackup" ] && [ ! -e "$SANDBOX/mnt/pg_root/.pitr-bundle-basebackup-incomplete" ]
}

@test "basebackup: without pg_waldump the files are verified, the WAL not parsed, and it says so" {
  verifies_backups || skip "no backup manifest before PostgreSQL 13"
  verify_stubs
  rm "$SANDBOX/pghome/bin/pg_waldump"
  run -0 "$BACKUP_SCRIPT"
  calls "^pg_verifybackup .* --no-parse-wal $SANDBOX/mnt/pg_root$" | grep -q .
  [[ $output == *"its WAL is not parsed: no pg_waldump in $SANDBOX/pghome/bin"* ]]
}

@test "basebackup: a backup that fails verification fails the step and stays marked unfinished" {
  verifies_backups || skip "no backup manifest before PostgreSQL 13"
  verify_stubs 'echo "pg_verifybackup: error: \"base/5/16384\" has size 8192 on disk but size 0 in the manifest" >&2; exit 1'
  run -1 "$BACKUP_SCRIPT"
  [[ $output == *'"base/5/16384" has size 8192 on disk but size 0 in the manifest'* ]]
  [[ $output == *"step 'verify the backup against its manifest' failed"* ]]
  [ -e "$SANDBOX/mnt/pg_root/.pitr-bundle-basebackup-incomplete" ]
  # a re-run starts over without --force: the marker says the folder holds no cluster
  verify_stubs
  run -0 "$BACKUP_SCRIPT"
  [ ! -e "$SANDBOX/mnt/pg_root/.pitr-bundle-basebackup-incomplete" ]
}

@test "basebackup: without pg_verifybackup in PGHOME the backup is kept and the log says it is not verified" {
  verifies_backups || skip "no backup manifest before PostgreSQL 13"
  run -0 "$BACKUP_SCRIPT"
  [[ $output == *"the backup is not verified: no pg_verifybackup in $SANDBOX/pghome/bin"* ]]
  [ ! -e "$SANDBOX/mnt/pg_root/.pitr-bundle-basebackup-incomplete" ]
}

@test "basebackup: a version without backup manifests says the backup is not verified" {
  ! verifies_backups || skip "this version writes a backup manifest"
  verify_stubs
  run -0 "$BACKUP_SCRIPT"
  [[ $output == *"the backup is not verified: PostgreSQL "*" writes no backup manifest (pg_verifybackup: 13+)"* ]]
  [ -z "$(calls '^pg_verifybackup')" ]
}

dataset_prop() {
  "$STUB_BIN/zfs" get -H -o value "$1" "$DATASET"
}

@test "basebackup: records the base backup's system identifier on the dataset" {
  run -0 "$BACKUP_SCRIPT"
  [ "$(dataset_prop pitr-bundle:system-id)" = 7301234567890123456 ]
  [[ $output != *"new generation"* ]]
  # recorded while the base backup still counts as unfinished, so a run stopped in between
  # takes it again
  [ "$(echo "$output" | grep -o 'run: zfs set pitr-bundle:system-id\|run: rm -f -- .*incomplete' | cut -d' ' -f2)" = "$(printf 'zfs\nrm')" ]
}

@test "basebackup: a base backup of the same system again is the same generation" {
  run -0 "$BACKUP_SCRIPT"
  "$STUB_BIN/zfs" set pitr-bundle:wal-kept-from=000000010000000000000009 "$DATASET"
  run -0 "$BACKUP_SCRIPT" --force --yes
  [[ $output == *"system 7301234567890123456: the same system as the previous base backup"* ]]
  [ "$(dataset_prop pitr-bundle:wal-kept-from)" = 000000010000000000000009 ]
}

@test "basebackup: a rebuilt primary (another system identifier) starts a new generation, said loudly" {
  run -0 "$BACKUP_SCRIPT"
  "$STUB_BIN/zfs" set pitr-bundle:wal-kept-from=000000010000003000000010 "$DATASET"
  echo 7399999999999999999 >"$SANDBOX/primary-sysid"
  run -0 "$BACKUP_SCRIPT" --force --yes
  [[ $output == *"WARNING: a new generation: the primary is now system 7399999999999999999, the previous base backup was of system 7301234567890123456"* ]]
  [ "$(dataset_prop pitr-bundle:system-id)" = 7399999999999999999 ]
  # the old system's floor of kept WAL applies to none of the new system's WAL
  [ "$(dataset_prop pitr-bundle:wal-kept-from)" = - ]
}

@test "basebackup: without a system identifier from pg_controldata: a warning, nothing recorded" {
  STUB_TARGET=$SANDBOX/pghome/bin stub pg_controldata 'echo garbage; exit 1'
  run -0 "$BACKUP_SCRIPT"
  [[ $output == *"WARNING: pg_controldata of "*"cannot tell the base backup's system identifier: none is recorded"* ]]
  [ ! -e "$SANDBOX/mnt/pg_root/.pitr-bundle-basebackup-incomplete" ]
  [ "$(dataset_prop pitr-bundle:system-id)" = - ]
}

@test "basebackup: a dataset zfs cannot read: a warning, nothing recorded, the backup finished" {
  "$STUB_BIN/zfs" destroy "$DATASET"
  run -0 "$BACKUP_SCRIPT"
  [[ $output == *"WARNING: zfs cannot read $DATASET: the base backup's system 7301234567890123456 is not recorded"* ]]
  [ ! -e "$SANDBOX/mnt/pg_root/.pitr-bundle-basebackup-incomplete" ]
}

# old_and_new_archive: WAL of the old system 7301234567890123456 (a 9.0 one's header too), of
# the rebuilt primary 7399999999999999999, a history and a backup file of the old system (an
# hour old) and a file that is not WAL
old_and_new_archive() {
  wal_file "$SANDBOX/arch/2026-11-23/000000010000000000000003" 7301234567890123456 24
  wal_file "$SANDBOX/arch/2026-11-24/000000010000000000000004" 7301234567890123456 24
  wal_file "$SANDBOX/arch/2026-11-24/000000020000000000000005.partial" 7301234567890123456 16
  wal_file "$SANDBOX/arch/2026-11-24/000000010000000000000001" 7399999999999999999 24
  printf 'history\n' >"$SANDBOX/arch/2026-11-24/00000002.history"
  printf 'backup\n' >"$SANDBOX/arch/2026-11-23/000000010000000000000003.00000028.backup"
  touch -d '-1 hour' "$SANDBOX/arch/2026-11-24/00000002.history" \
    "$SANDBOX/arch/2026-11-23/000000010000000000000003.00000028.backup"
  printf 'notes\n' >"$SANDBOX/arch/2026-11-24/README"
}

@test "basebackup: a new generation sets the old system's WAL apart, by the system in its headers" {
  run -0 "$BACKUP_SCRIPT"
  old_and_new_archive
  echo 7399999999999999999 >"$SANDBOX/primary-sysid"
  run -0 "$BACKUP_SCRIPT" --force --yes
  [[ $output == *"set apart 5 file(s) of system 7301234567890123456 in $SANDBOX/generations/7301234567890123456"* ]]
  old=$SANDBOX/generations/7301234567890123456
  [ "$(cd "$old" && find . -type f | LC_ALL=C sort | tr '\n' ' ')" = "./2026-11-23/000000010000000000000003 ./2026-11-23/000000010000000000000003.00000028.backup ./2026-11-24/000000010000000000000004 ./2026-11-24/00000002.history ./2026-11-24/000000020000000000000005.partial " ]
  # the new system's WAL and what is not WAL stay
  [ "$(cd "$SANDBOX/arch" && find . -type f | LC_ALL=C sort | tr '\n' ' ')" = "./2026-11-24/000000010000000000000001 ./2026-11-24/README " ]
  [ "$(dataset_prop pitr-bundle:system-id)" = 7399999999999999999 ]
}

@test "basebackup: the same system again moves nothing out of the archive" {
  run -0 "$BACKUP_SCRIPT"
  old_and_new_archive
  run -0 "$BACKUP_SCRIPT" --force --yes
  [ ! -e "$SANDBOX/generations" ]
  [ "$(find "$SANDBOX/arch" -type f | wc -l)" -eq 7 ]
}

@test "basebackup: a new generation unconfirmed moves nothing and records nothing" {
  uses_pg_basebackup || skip "the copy itself needs the primary over ssh"
  run -0 "$BACKUP_SCRIPT"
  old_and_new_archive
  echo 7399999999999999999 >"$SANDBOX/primary-sysid"
  rm -rf "${SANDBOX:?}/mnt/pg_root/"*
  run -4 "$BACKUP_SCRIPT" </dev/null
  [[ $output == *"Move the archive's 5 file(s) of system 7301234567890123456"*"refusing without --yes"* ]]
  [ ! -e "$SANDBOX/generations" ]
  [ "$(dataset_prop pitr-bundle:system-id)" = 7301234567890123456 ]
  # the backup still counts as unfinished: a snapshot refuses it, a re-run takes it again
  [ -e "$SANDBOX/mnt/pg_root/.pitr-bundle-basebackup-incomplete" ]
}

@test "basebackup: --dry-run records nothing on the dataset" {
  run -0 "$BACKUP_SCRIPT" --dry-run
  [[ $output == *"would record the base backup's system identifier on $DATASET"* ]]
  [ -z "$(calls '^zfs (set|inherit)')" ]
}

@test "basebackup: TLS asked for: libpq gets its sslmode and CA file; without the CA file it refuses first" {
  [[ -n $TLS_CA ]] || skip "the spec asks for no TLS"
  uses_pg_basebackup || skip "this cluster's version predates pg_basebackup (psql gets the same environment)"
  local bin=$SANDBOX/pghome/bin mode
  mode=$(cluster_fact "['replication_tls']['mode']")
  mv "$bin/pg_basebackup" "$bin/pg_basebackup.fake"
  STUB_TARGET=$bin stub pg_basebackup "printf '%s %s\n' \"\${PGSSLMODE-}\" \"\${PGSSLROOTCERT-}\" >$(printf %q "$SANDBOX/tls-env"); exec $(printf %q "$bin/pg_basebackup.fake") \"\$@\""
  run -0 "$BACKUP_SCRIPT"
  [ "$(cat "$SANDBOX/tls-env")" = "$mode $(cluster_fact "['replication_tls']['ca_file']")" ]
  [[ $output == *"CA file $TLS_CA present (sslmode $mode)"* ]]
  # the CA file gone: refused before PGDATA is touched
  rm -rf "${SANDBOX:?}/mnt/pg_root"/* "$TLS_CA"
  : >"$STUB_LOG"
  run -3 "$BACKUP_SCRIPT"
  [[ $output == *"$TLS_CA missing: replication.tls.mode $mode checks the primary's certificate against it. Copy the primary's CA certificate there"* ]]
  [ -z "$(ls -A "$SANDBOX/mnt/pg_root")" ]
  [ -z "$(calls '^(pg_basebackup|psql|install|touch|tar)')" ]
}
