#!/usr/bin/env bats
# The datasets script (role "datasets"), against a stateful fake zpool/zfs.

load test_helper

# an archive migration is the path of a host set up before: its cluster datasets exist, so a
# host spec that asks for encryption is refused there before any archive moves (tested below)
needs_no_encryption() {
  [[ $(query "facts['encryption'] is None") == True ]] ||
    skip "an existing host's archive migration: with encryption its unencrypted datasets are refused first"
}

# needs_clusters: the archive tests need a cluster of the host's own (a replica has none)
needs_clusters() {
  [[ $(query "len(facts['clusters'])") -gt 0 ]] || skip "no cluster of this host's own (a replica host)"
}

make_world() {
  setup_stubs
  DATASETS_SCRIPT=$(encrypted_copy "$(script_of datasets)")
  POOL=$(query "facts['pool']['name']")
  "$STUB_BIN/zpool" create -o ashift=12 "$POOL" mirror /dev/a /dev/b
  : >"$STUB_LOG"
}

setup_file() {
  world_setup_file make_world
}

setup() {
  world_reset
}

@test "datasets: creates every shared and cluster dataset with its mountpoint" {
  run -0 "$DATASETS_SCRIPT"
  while read -r entry; do
    name=$(jq_get "$entry" name)
    mountpoint=$(jq_get "$entry" mountpoint)
    calls "^zfs create -p -o mountpoint=$mountpoint( -o [^ ]+)* $name\$" | grep -q . ||
      { echo "no create for $name at $mountpoint"; cat "$STUB_LOG"; false; }
  done < <(query "facts['datasets']")
  [ "$(calls '^zfs create' | wc -l)" -eq "$(query "len(facts['datasets'])")" ]
}

@test "datasets: a second run changes nothing and reports each as already present" {
  run -0 "$DATASETS_SCRIPT"
  : >"$STUB_LOG"
  run -0 "$DATASETS_SCRIPT"
  [ -z "$(changing_calls)" ]
  [[ $output == *"0 created, 0 updated, $(query "len(facts['datasets'])") already present"* ]]
}

@test "datasets: --dry-run lists the creates and changes nothing" {
  run -0 "$DATASETS_SCRIPT" --dry-run
  [ -z "$(changing_calls)" ]
  [ "$(grep -c 'would run: zfs create' <<<"$output")" -eq "$(query "len(facts['datasets'])")" ]
}

@test "datasets: a moved mountpoint is put back only with confirmation" {
  run -0 "$DATASETS_SCRIPT"
  first=$(query "facts['datasets'][0]['name']")
  "$STUB_BIN/zfs" set mountpoint=/elsewhere "$first"
  : >"$STUB_LOG"
  run -4 "$DATASETS_SCRIPT" </dev/null
  [ -z "$(changing_calls)" ]
  run -0 "$DATASETS_SCRIPT" --yes
  [ "$(changing_calls)" = "zfs set mountpoint=$(query "facts['datasets'][0]['mountpoint']") $first" ]
}

@test "datasets: refuses when the pool does not exist" {
  rm -f "$FAKE_ZFS_STATE/ds/$POOL"
  run -3 "$DATASETS_SCRIPT"
  [[ $output == *"pool $POOL not found"* ]]
  [ -z "$(changing_calls)" ]
}

@test "datasets: --dry-run on a fresh host (no pool yet) still lists every create" {
  rm -f "$FAKE_ZFS_STATE/ds/$POOL"
  run -0 "$DATASETS_SCRIPT" --dry-run
  [[ $output == *"dry-run: pool $POOL not found"*"going on as if that step had run"* ]]
  [ "$(grep -c 'would run: zfs create' <<<"$output")" -eq "$(query "len(facts['datasets'])")" ]
  [ -z "$(changing_calls)" ]
}

@test "datasets: a failing zfs create stops the run with the dataset named" {
  first=$(query "facts['datasets'][0]['name']")
  FAKE_FAIL="zfs create * $first" run -1 "$DATASETS_SCRIPT"
  [[ $output == *"step 'dataset $first' failed"* ]]
  [ "$(calls '^zfs create' | wc -l)" -eq 1 ]
}

# archive_dataset: the dataset of the WAL archive (root on every primary writes into it)
archive_dataset() {
  query "[d['name'] for d in facts['datasets'] if d['mountpoint'] == facts['archive_root']][0]"
}

@test "datasets: the archive is made with exec, setuid and devices off, and an existing one is brought in line" {
  needs_clusters
  run -0 "$DATASETS_SCRIPT"
  arch=$(archive_dataset)
  calls "^zfs create -p -o mountpoint=[^ ]+ -o devices=off -o exec=off -o setuid=off $arch\$" | grep -q .
  for property in exec setuid devices; do
    [ "$("$STUB_BIN/zfs" get -H -o value "$property" "$arch")" = off ]
  done
  # an archive dataset made before (exec, setuid and devices on)
  "$STUB_BIN/zfs" set exec=on "$arch"
  "$STUB_BIN/zfs" set devices=on "$arch"
  : >"$STUB_LOG"
  run -0 "$DATASETS_SCRIPT" --dry-run
  [ -z "$(changing_calls)" ]
  [[ $output == *"would run: zfs set devices=off $arch"*"would run: zfs set exec=off $arch"* ]]
  run -0 "$DATASETS_SCRIPT"
  [ "$(changing_calls)" = "zfs set devices=off $arch
zfs set exec=off $arch" ]
  [[ $output == *"$arch: 2 properties updated"* ]]
  : >"$STUB_LOG"
  run -0 "$DATASETS_SCRIPT"
  [ -z "$(changing_calls)" ]
}


# ---- each cluster's archive, a dataset of its own (docs/archive-datasets.md) ----------------

@test "datasets: each cluster's archive is a dataset under the archive dataset, hardened as it, at <archive root>/<cluster>" {
  needs_clusters
  run -0 "$DATASETS_SCRIPT"
  arch=$(archive_dataset)
  root=$(query "facts['archive_root']")
  [ "$(query "len([d for d in facts['datasets'] if d['kind'] == 'archive'])")" -eq "$(query "len(facts['clusters'])")" ]
  for c in $(query "[c['name'] for c in facts['clusters']]"); do
    [ "$(query "[c['archive_dataset'] for c in facts['clusters'] if c['name'] == '$c'][0]")" = "$arch/$c" ]
    # (then keylocation, encryption and keyformat where the host spec asks for encryption)
    calls "^zfs create -p -o mountpoint=$root/$c -o devices=off -o exec=off -o setuid=off( -o [^ ]+)* $arch/$c\$" | grep -q .
  done
  # made after the archive dataset they sit in
  [ "$(calls '^zfs create' | grep -n " $arch\$" | cut -d: -f1)" -lt "$(calls '^zfs create' | grep -n " $arch/" | head -n1 | cut -d: -f1)" ]
}

# migration_world METHOD: the host before archive datasets: every other dataset there, the
# archive root a folder in the sandbox holding the archive folder of a cluster that archives
# through METHOD (nfs, standby, or any: the first cluster), with WAL in it; MIGRATE_SCRIPT is
# the datasets script rebased there, mounts simulated (FAKE_ZFS_MOUNTS). Skips when no cluster
# of the bundle archives through METHOD (check of the example runs both: its 9.0 cluster on NFS,
# its 17 one through its standby)
migration_world() {
  local method=$1
  needs_clusters
  export FAKE_ZFS_MOUNTS=1
  ROOT=$SANDBOX/pg_arch
  ARCH=$(archive_dataset)
  C=$(query "([c['name'] for c in facts['clusters'] if '$method' in ('any', c['archive']['method'])] + [''])[0]")
  [[ -n $C ]] || skip "no cluster of this bundle archives through method $method"
  C_METHOD=$(query "[c['archive']['method'] for c in facts['clusters'] if c['name'] == '$C'][0]")
  C_DIR=$ROOT/$C
  while read -r entry; do
    [ "$(jq_get "$entry" kind)" != archive ] || continue
    "$STUB_BIN/zfs" create -p -o "mountpoint=$(jq_get "$entry" mountpoint)" "$(jq_get "$entry" name)"
  done < <(query "facts['datasets']")
  mkdir -p "$C_DIR/arch/2026-01-01" "$C_DIR/arch/2026-01-02" "$SANDBOX/lock"
  for n in 1 2 3; do echo "wal $n" >"$C_DIR/arch/2026-01-01/00000001000000000000000$n"; done
  echo "wal 4" >"$C_DIR/arch/2026-01-02/000000010000000000000004"
  echo "00000001000000000000000A.history" >"$C_DIR/arch/2026-01-02/00000002.history"
  echo "1 16777216 000000010000000000000002 2026-01-01T00:00:00Z" >"$C_DIR/dropped-wal"
  # a call in flight: copied, not linked yet (never WAL under its temporary name)
  echo "wal 5" >"$C_DIR/arch/2026-01-02/.000000010000000000000005.4242.tmp"
  # the archive root is root's, 0755 (the fake stat: the sandbox is the test user's)
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub stat 'if [[ ${*: -1} == "'"$ROOT"'" ]]; then echo "root 755"; else exec /usr/bin/stat "$@"; fi'
  stub flock
  # exportfs: the NFS server's table, as exportfs -s prints it ($SANDBOX/.exports)
  for client in $(query "[d['nfs_clients'] for d in facts['datasets'] if d['cluster'] == '$C' and d['kind'] == 'archive'][0]" | tr -d '[],"'); do
    printf '%s %s(rw,no_root_squash,sync)\n' "$C_DIR" "$client" >>"$SANDBOX/.exports"
  done
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub exportfs 'case $1 in
  -s) cat "$SANDBOX/.exports"; [[ -z ${ON_EXPORTS_READ:-} ]] || eval "$ON_EXPORTS_READ" ;;
  -u) grep -vF "${2#*:} ${2%%:*}(" "$SANDBOX/.exports" >"$SANDBOX/.exports.new" || true; /bin/mv "$SANDBOX/.exports.new" "$SANDBOX/.exports" ;;
esac'
  MIGRATE_SCRIPT=$(rebase "$DATASETS_SCRIPT" ARCHIVE_ROOT="$ROOT" LOCK_DIR="$SANDBOX/lock" SETTLE_SECONDS=0)
  : >"$STUB_LOG"
}

# standby_world: migration_world of a standby-archived cluster, its archive folder as
# 60-standby.sh leaves it (the cluster's user's, 2750: a number that needs no such user when
# the suite runs as root), and the standby's writer: `$WRITER NAME CONTENT` archives WAL file
# NAME as the archive helper does (the archive folder must exist, it is never made again; a
# temporary file, then a link to its name), logging "archived NAME" or "failed NAME: why" to
# $WRITER_LOG. A stub sync (the migration syncs after each copy) runs ON_SYNC_<n> at its n-th call
standby_world() {
  migration_world standby
  chmod 2750 "$C_DIR"
  if [[ $(/usr/bin/id -u) == 0 ]]; then
    chown -R 4242:4242 "$C_DIR"
  fi
  C_OWNER=$(/usr/bin/stat -c '%u:%g %a' -- "$C_DIR")
  WRITER=$BATS_TEST_TMPDIR/standby-writer WRITER_LOG=$BATS_TEST_TMPDIR/writer.log
  : >"$WRITER_LOG"
  cat >"$WRITER" <<WRITER
#!$BASH
arch=$C_DIR/arch day=2026-01-02 log=$WRITER_LOG
[[ -d \$arch ]] || { echo "failed \$1: \$arch missing" >>"\$log"; exit 1; }
mkdir -p -- "\$arch/\$day" || { echo "failed \$1: no day folder" >>"\$log"; exit 1; }
for f in "\$arch"/*/"\$1"; do
  [[ -e \$f ]] || continue
  [[ \$(cat -- "\$f") == "\$2" ]] || { echo "failed \$1: other content" >>"\$log"; exit 1; }
  echo "archived \$1 (already there)" >>"\$log"
  exit 0
done
temp=\$arch/\$day/.\$1.\$\$.tmp
printf '%s\n' "\$2" >"\$temp" && ln -- "\$temp" "\$arch/\$day/\$1" ||
  { rm -f -- "\$temp"; echo "failed \$1: not linked" >>"\$log"; exit 1; }
rm -f -- "\$temp"
echo "archived \$1" >>"\$log"
WRITER
  chmod +x "$WRITER"
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub sync 'n=1; [[ ! -f $SANDBOX/.syncs ]] || n=$(($(<"$SANDBOX/.syncs") + 1)); echo "$n" >"$SANDBOX/.syncs"
hook=ON_SYNC_$n; eval "${!hook:-}" || true'
  : >"$STUB_LOG"
}

# archived_files DIR: the files under DIR (relative, sorted, with content), the helper's
# temporary files left out
archived_files() {
  (cd "$1" && find -L . -type f ! -name '.*.tmp' -print | sort | while read -r f; do printf '%s: %s\n' "$f" "$(cat "$f")"; done)
}

# migrated EXPECTED: the dataset mounted at the archive's place holding exactly EXPECTED
# (archived_files), nothing left aside, no temporary mountpoint
migrated() {
  [ "$("$STUB_BIN/zfs" get -H -o value mountpoint "$ARCH/$C")" = "$C_DIR" ]
  [ -L "$C_DIR" ]  # the fake's mount
  [ "$(archived_files "$C_DIR")" = "$1" ]
  [ ! -e "$ROOT/.$C.premigration" ]
  [ ! -e "$ROOT/.$C.migrating" ]
}

# stop_at_mount: a migration whose mount fails (exit 1), the folder aside, no archive in place;
# then the run without the flag refuses (nothing changed), naming the command that finishes it
stop_at_mount() {
  FAKE_FAIL="zfs set mountpoint=$C_DIR $ARCH/$C" run -1 "$MIGRATE_SCRIPT" --migrate-archive "$C"
  [ ! -e "$C_DIR" ]
  [ -d "$ROOT/.$C.premigration" ]
}
refused_half_way() {
  : >"$STUB_LOG"
  run -3 "$MIGRATE_SCRIPT"
  [[ $output == *"$C: a migration of its archive stopped half-way: run"*"--migrate-archive $C"* ]]
  [ -z "$(changing_calls | grep -v '^stat ')" ]
}

# left_differing: the run failed, the file 3 whose dataset copy has other bytes left in the old
# folder, named, and nothing else
left_differing() {
  [[ $output == *"$C_DIR/arch/2026-01-01/000000010000000000000003 differs from $ROOT/.$C.premigration/arch/2026-01-01/000000010000000000000003"* ]]
  [[ $output == *"1 file(s) of a migrated archive have no identical copy"* ]]
  [ "$(cat "$ROOT/.$C.premigration/arch/2026-01-01/000000010000000000000003")" = "wal 3" ]
  [ "$(find "$ROOT/.$C.premigration" -type f | wc -l)" -eq 1 ]
}

@test "datasets: an archive that is a folder with WAL is refused without --migrate-archive, naming what the migration does (NFS cluster)" {
  needs_no_encryption
  migration_world nfs
  run -3 "$MIGRATE_SCRIPT"
  [ -z "$(changing_calls)" ]
  [[ $output == *"$C: $C_DIR is a folder of $ARCH (6 file(s)"* ]]
  [[ $output == *"--migrate-archive CLUSTER"*"nothing changed"* ]]
  [[ $output == *"exportfs -u "*":$C_DIR"* ]]
  [[ $output == *"umount -l "* ]]
  [ -d "$C_DIR" ] && [ ! -L "$C_DIR" ]
  run -3 "$MIGRATE_SCRIPT" --dry-run
  [ -z "$(changing_calls)" ]
  run -2 "$MIGRATE_SCRIPT" --migrate-archive no-such-cluster
  [[ $output == *"no cluster of this host is named so"* ]]
  [ -z "$(changing_calls)" ]
}

@test "datasets: an archive that is a folder with WAL is refused without --migrate-archive, naming what the migration does (standby cluster)" {
  needs_no_encryption
  standby_world
  run -3 "$MIGRATE_SCRIPT"
  [ -z "$(changing_calls)" ]
  [[ $output == *"$C: $C_DIR is a folder of $ARCH (6 file(s)"* ]]
  [[ $output == *"the standby archives: its archive_command fails while $C_DIR is away"* ]]
  # no NFS writer: nothing to hold off, nothing to remount
  [[ $output != *"exportfs"*"$C_DIR"* && $output != *"umount -l"* ]]
  [ -d "$C_DIR" ] && [ ! -L "$C_DIR" ]
}

@test "datasets: --migrate-archive --dry-run says each step and changes nothing" {
  needs_no_encryption
  migration_world any
  before=$(archived_files "$C_DIR")
  run -0 "$MIGRATE_SCRIPT" --migrate-archive "$C" --dry-run
  [ -z "$(changing_calls | grep -Ev '^(stat|exportfs -s)( |$)')" ]
  [[ $output == *"would run: zfs create -p -o mountpoint=$ROOT/.$C.migrating -o devices=off -o exec=off -o setuid=off $ARCH/$C"* ]]
  [[ $output == *"would run: copy_missing $C_DIR $ROOT/.$C.migrating"* ]]
  [[ $output == *"would run: mv -T -- $C_DIR $ROOT/.$C.premigration"* ]]
  [[ $output == *"would run: zfs set mountpoint=$C_DIR $ARCH/$C"* ]]
  [ "$(archived_files "$C_DIR")" = "$before" ]
  [ ! -e "$ROOT/.$C.premigration" ]
}

@test "datasets: --migrate-archive moves the archive into its dataset while WAL arrives, losing none (NFS cluster)" {
  needs_no_encryption
  migration_world nfs
  before=$(archived_files "$C_DIR")
  # WAL arriving after the bulk copy, before the writers are held off (read of the exports)
  export ON_EXPORTS_READ="[[ -e $C_DIR/arch/2026-01-02/000000010000000000000006 ]] || echo 'wal 6' >$C_DIR/arch/2026-01-02/000000010000000000000006"
  run -0 "$MIGRATE_SCRIPT" --migrate-archive "$C"
  # the dataset at the archive's place, every file in it (the late one too), nothing left aside
  migrated "$(printf '%s\n' "$before" "./arch/2026-01-02/000000010000000000000006: wal 6" | sort)"
  # the NFS writers held off before the folder moved, the exports loaded again after the mount
  order=$(calls "^exportfs -ra\$|^(exportfs -u|zfs (create|set mountpoint)).*( $ARCH/$C|:$C_DIR)\$" | cut -d' ' -f1-2)
  # one exportfs -u per writer of the cluster (its primary, and an HA partner if it has one)
  clients=$(query "len([d for d in facts['datasets'] if d['kind'] == 'archive' and d['cluster'] == '$C'][0]['nfs_clients'])")
  held=$(for ((i = 0; i < clients; i++)); do echo 'exportfs -u'; done)
  [ "$order" = "$(printf '%s\n' 'zfs create' "$held" 'zfs set' 'exportfs -ra')" ]
  [[ $output == *"umount -l "*"stale"* ]]
  [[ $output == *"1 archive(s) migrated"* ]]
  # a re-run: the archive is a dataset, nothing to do
  : >"$STUB_LOG"
  run -0 "$MIGRATE_SCRIPT"
  [ -z "$(calls '^zfs (create|set)|^exportfs -[ur]')" ]
  [[ $output == *"$ARCH/$C: already present"* ]]
}

@test "datasets: --migrate-archive of a standby-archived cluster holds nothing off: the standby's writes fail while the folder is away, and its retry lands in the dataset" {
  needs_no_encryption
  standby_world
  before=$(archived_files "$C_DIR")
  # after the bulk copy, the folder still in place: the standby archives WAL 6 into it
  export ON_SYNC_1="$WRITER 000000010000000000000006 'wal 6'"
  # the folder moved aside, the dataset not mounted yet: WAL 7 fails (no archive folder)
  export FAKE_HOOK_ON="zfs set mountpoint=$C_DIR $ARCH/$C" FAKE_HOOK="$WRITER 000000010000000000000007 'wal 7'"
  # the dataset mounted and the late files copied: PostgreSQL's retry of WAL 7 succeeds
  export ON_SYNC_2="$WRITER 000000010000000000000007 'wal 7'"
  run -0 "$MIGRATE_SCRIPT" --migrate-archive "$C"
  [ "$(cat "$WRITER_LOG")" = "archived 000000010000000000000006
failed 000000010000000000000007: $C_DIR/arch missing
archived 000000010000000000000007" ]
  migrated "$(printf '%s\n' "$before" "./arch/2026-01-02/000000010000000000000006: wal 6" "./arch/2026-01-02/000000010000000000000007: wal 7" | sort)"
  # the dataset's root has the folder's owner and mode (60-standby.sh's: the cluster's user, 2750)
  [ "$(/usr/bin/stat -L -c '%u:%g %a' -- "$C_DIR")" = "$C_OWNER" ]
  # no NFS writer: nothing held off, nothing exported, no remount to run
  [ -z "$(calls '^exportfs')" ]
  [[ $output == *"written by the standby's archive_command"* && $output != *"umount -l"* ]]
  [[ $output == *"1 archive(s) migrated"* ]]
  : >"$STUB_LOG"
  run -0 "$MIGRATE_SCRIPT"
  [ -z "$(changing_calls | grep -Ev '^(stat|sync)( |$)')" ]
  [[ $output == *"$ARCH/$C: already present"* ]]
}

@test "datasets: a migration stopped at the mount is refused without the flag, and finished by the next run (NFS cluster)" {
  needs_no_encryption
  migration_world nfs
  before=$(archived_files "$C_DIR")
  stop_at_mount
  # its NFS clients are held off until the run that finishes it exports the archive again
  [ -z "$(grep -F "$C_DIR " "$SANDBOX/.exports")" ]
  refused_half_way
  run -0 "$MIGRATE_SCRIPT" --migrate-archive "$C"
  migrated "$before"
  [ "$(calls '^exportfs -ra$')" = "exportfs -ra" ]
}

@test "datasets: a migration stopped at the mount is refused without the flag, and finished by the next run (standby cluster)" {
  needs_no_encryption
  standby_world
  before=$(archived_files "$C_DIR")
  stop_at_mount
  # until the run that finishes it, the standby's archiver finds no archive folder and fails
  # (PostgreSQL keeps the WAL and retries)
  run -1 "$WRITER" 000000010000000000000007 'wal 7'
  refused_half_way
  run -0 "$MIGRATE_SCRIPT" --migrate-archive "$C"
  migrated "$before"
  [ "$(/usr/bin/stat -L -c '%u:%g %a' -- "$C_DIR")" = "$C_OWNER" ]
  [ -z "$(calls '^exportfs')" ]
  run -0 "$WRITER" 000000010000000000000007 'wal 7'
  [ "$(cat "$WRITER_LOG")" = "failed 000000010000000000000007: $C_DIR/arch missing
archived 000000010000000000000007" ]
  [ "$(cat "$C_DIR/arch/2026-01-02/000000010000000000000007")" = "wal 7" ]
}

@test "datasets: a migrated file whose copy differs stays in the old folder, named, and the run fails (NFS cluster)" {
  needs_no_encryption
  migration_world nfs
  # a writer put other bytes under an archived name in the dataset during the switch
  export ON_EXPORTS_READ="d=$ROOT/.$C.migrating/arch/2026-01-01; [[ -e \$d/000000010000000000000003 ]] && { rm -f \$d/000000010000000000000003; echo other >\$d/000000010000000000000003; }"
  run -1 "$MIGRATE_SCRIPT" --migrate-archive "$C"
  left_differing
}

@test "datasets: a migrated file whose copy differs stays in the old folder, named, and the run fails (standby cluster)" {
  needs_no_encryption
  standby_world
  # other bytes under an archived name in the dataset, after the bulk copy
  export ON_SYNC_1="d=$ROOT/.$C.migrating/arch/2026-01-01; rm -f \$d/000000010000000000000003; echo other >\$d/000000010000000000000003"
  run -1 "$MIGRATE_SCRIPT" --migrate-archive "$C"
  left_differing
  # the rest is in the dataset, mounted with the folder's owner and mode, and the standby
  # archives into it
  [ "$(/usr/bin/stat -L -c '%u:%g %a' -- "$C_DIR")" = "$C_OWNER" ]
  run -0 "$WRITER" 000000010000000000000006 'wal 6'
  [ -z "$(calls '^exportfs')" ]
}

@test "datasets: a migration is refused while a snapshot or retention run holds the cluster's lock" {
  needs_no_encryption
  migration_world any
  stub flock 'exit 1'
  run -3 "$MIGRATE_SCRIPT" --migrate-archive "$C"
  [[ $output == *"holds $SANDBOX/lock/pitr-snapshot-$C.lock"* ]]
  [ -z "$(changing_calls | grep -Ev '^(stat|flock|exportfs -s) ')" ]
}

# --- encryption (host spec encryption): run on a spec with it; skipped on one without ----------

needs_encryption() {
  [[ $(query "(facts['encryption'] or {}).get('key') or ''") == "${1:-file}" ]] ||
    skip "the host spec asks for no encryption with key: ${1:-file}"
}

@test "datasets: encryption: each cluster's dataset and archive made encrypted, their key file named" {
  needs_encryption file
  run -0 "$DATASETS_SCRIPT"
  while read -r entry; do
    name=$(jq_get "$entry" name)
    cluster=$(jq_get "$entry" cluster)
    calls "^zfs create -p -o mountpoint=[^ ]+( -o [^ ]+)* -o keylocation=file://$PITR_WORLD/keys/$cluster.key -o encryption=aes-256-gcm -o keyformat=raw $name\$" | grep -q . ||
      { echo "no encrypted create of $name"; cat "$STUB_LOG"; false; }
  done < <(query "[d for d in facts['datasets'] if d['create_properties']]")
  [ "$(query "len([d for d in facts['datasets'] if d['create_properties']])")" -eq "$((2 * $(query "len(facts['clusters'])")))" ]
  # the shared datasets stay as they are
  [ -z "$(calls '^zfs create .*-o encryption=.* [^ ]+/pg_(home|log)$')" ]
}

@test "datasets: encryption: a missing, open or short key file is refused before anything changes" {
  needs_encryption file
  cluster=$(query "facts['clusters'][0]['name']")
  key=$PITR_WORLD/keys/$cluster.key
  rm -f "$key"
  run -3 "$DATASETS_SCRIPT"
  [[ $output == *"needs its key $key: install -d -m 0700 $PITR_WORLD/keys && head -c 32 /dev/urandom >$key && chmod 0400 $key, and keep a copy off this host"* ]]
  [ -z "$(changing_calls)" ]
  head -c 32 /dev/urandom >"$key"
  chmod 0644 "$key"
  run -3 "$DATASETS_SCRIPT"
  [[ $output == *"$key must be root's and readable by root alone (chmod 0400), not root 644"* ]]
  head -c 16 /dev/urandom >"$key"
  chmod 0400 "$key"
  run -3 "$DATASETS_SCRIPT"
  [[ $output == *"$key holds 16 bytes, a raw key is 32"* ]]
  [[ $output == *"dataset(s) cannot be encrypted as the host spec asks: nothing changed"* ]]
  [ -z "$(changing_calls)" ]
}

@test "datasets: encryption: an existing unencrypted dataset is refused (no encryption in place), nothing changed" {
  needs_encryption file
  name=$(query "[d for d in facts['datasets'] if d['kind'] == 'cluster'][0]['name']")
  "$STUB_BIN/zfs" create -p -o mountpoint=/elsewhere "$name"
  : >"$STUB_LOG"
  run -3 "$DATASETS_SCRIPT"
  [[ $output == *"$name exists unencrypted: ZFS cannot encrypt a dataset in place"* ]]
  [ -z "$(changing_calls)" ]
}

@test "datasets: encryption: after a boot an encrypted dataset whose key is not loaded gets it, and is mounted" {
  needs_encryption file
  run -0 "$DATASETS_SCRIPT"
  name=$(query "[d for d in facts['datasets'] if d['kind'] == 'cluster'][0]['name']")
  "$STUB_BIN/zfs" set keystatus=unavailable "$name"
  : >"$STUB_LOG"
  run -0 "$DATASETS_SCRIPT"
  [ "$(changing_calls)" = "$(printf 'zfs load-key %s\nzfs mount %s' "$name" "$name")" ]
  "$STUB_BIN/zfs" set keystatus=unavailable "$name"
  : >"$STUB_LOG"
  run -0 "$DATASETS_SCRIPT" --dry-run
  [ -z "$(changing_calls)" ]
  [[ $output == *"would run: zfs load-key $name"* ]]
}
