#!/usr/bin/env bats
# The archive helper and the archive mount script that the primary-side script installs
# (role "primary": pitr-archive-wal.sh, pitr-archive-mount.sh), run on their own; with
# archive.method standby the same helper, installed on the backup host by the standby step
# (role "standby": pitr-archive-wal.sh), and no mount script.

# What this suite reads of its cluster, and all it sees of the bundle (generator/views.py):
# view roles: primary:pitr-archive-wal.sh primary:pitr-archive-mount.sh standby:pitr-archive-wal.sh
# view facts: name archive.method

load test_helper

make_world() {
  setup_stubs
  HELPER_IN_BUNDLE=$(cluster_file pitr-archive-wal.sh)
  ARCHIVE_METHOD=$(cluster_fact "['archive']['method']")
  [[ $ARCHIVE_METHOD == standby ]] || MOUNT_IN_BUNDLE=$(cluster_file pitr-archive-mount.sh)
}

setup_file() {
  world_setup_file make_world
}

setup() {
  world_reset
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

# dropping_helper: a helper with a queue limit of three 16-byte "segments", its drop count in
# the sandbox, the copy beside the archive folder in PUBLISHED (or where $1 says); four waiting
# files in pg_wal
dropping_helper() {
  stub logger
  mkdir -p "$SANDBOX/pgdata/pg_wal/archive_status" "$SANDBOX/archive/arch"
  stub mountpoint 'exit 0'
  PUBLISHED=${1:-$SANDBOX/archive/dropped-wal}
  helper=$(rebase "$HELPER_IN_BUNDLE" ARCHIVE="$SANDBOX/archive/arch" QUEUE_MAX=48 \
    DROPPED_FILE="$SANDBOX/state/dropped-wal" PUBLISHED_DROPPED="$PUBLISHED")
  cd "$SANDBOX/pgdata"
  local n
  for n in 1 2 3 4; do
    printf '0123456789abcdef' >"pg_wal/00000001000000000000000$n"
    touch "pg_wal/archive_status/00000001000000000000000$n.ready"
  done
}

@test "archive helper: the next successful copy after a drop puts the drop count beside the archive folder, once" {
  dropping_helper
  run -0 "$helper" pg_wal/000000010000000000000001 000000010000000000000001
  [[ $output == *"DROPPED 000000010000000000000001"* ]]
  # the drop itself cannot reach the backup host (the archive is what fails)
  [ ! -e "$PUBLISHED" ]
  rm pg_wal/archive_status/*.ready
  run -0 "$helper" pg_wal/000000010000000000000002 000000010000000000000002
  cmp "$SANDBOX/state/dropped-wal" "$PUBLISHED"
  [ "$(/usr/bin/stat -c %a "$PUBLISHED")" = 640 ]
  [ -z "$(find "$SANDBOX/archive" -name '*.tmp')" ]
  # the same count is not written again
  local inode
  inode=$(/usr/bin/stat -c %i "$PUBLISHED")
  run -0 "$helper" pg_wal/000000010000000000000003 000000010000000000000003
  [ "$(/usr/bin/stat -c %i "$PUBLISHED")" = "$inode" ]
  # a new drop: the next copy brings the new count
  touch pg_wal/archive_status/00000001000000000000000{1,2,3,4}.ready
  run -0 "$helper" pg_wal/000000010000000000000004 000000010000000000000004
  rm pg_wal/archive_status/*.ready
  printf 'fedcba9876543210' >pg_wal/000000010000000000000005
  run -0 "$helper" pg_wal/000000010000000000000005 000000010000000000000005
  read -r files _ last _ <"$PUBLISHED"
  [ "$files $last" = "2 000000010000000000000004" ]
}

@test "archive helper: a drop count that cannot be put beside the archive is logged, the WAL file still archived, and the next copy tries again" {
  dropping_helper "$SANDBOX/nowhere/dropped-wal"
  run -0 "$helper" pg_wal/000000010000000000000001 000000010000000000000001
  rm pg_wal/archive_status/*.ready
  run -0 "$helper" pg_wal/000000010000000000000002 000000010000000000000002
  [[ $output == *"could not copy the drop count $SANDBOX/state/dropped-wal to $SANDBOX/nowhere/dropped-wal: the backup host does not see the dropped WAL"* ]]
  calls '^logger -p daemon.err -t pitr-archive-wal -- could not copy the drop count' | grep -q .
  cmp pg_wal/000000010000000000000002 "$SANDBOX/archive/arch/$(TZ=UTC date +%F)/000000010000000000000002"
  # the next successful copy tries again
  mkdir "$SANDBOX/nowhere"
  run -0 "$helper" pg_wal/000000010000000000000003 000000010000000000000003
  cmp "$SANDBOX/state/dropped-wal" "$PUBLISHED"
}

@test "archive mount: the export is mounted nosuid, nodev, noexec whatever the spec's options" {
  [[ $ARCHIVE_METHOD == nfs ]] || skip "archive.method standby: no NFS, no mount script"
  stub mountpoint 'exit 1'
  stub mount
  script=$(rebase "$MOUNT_IN_BUNDLE" MOUNTPOINT="$SANDBOX/pgarch")
  run -0 "$script"
  options=$(calls '^mount -t nfs -o ' | cut -d' ' -f5)
  [[ ,$options, == *,nosuid,* && ,$options, == *,nodev,* && ,$options, == *,noexec,* ]]
  # the last word wins in mount(8): nothing after them turns them off
  [[ $options == *,nosuid,nodev,noexec ]]
}

# bounded_helper: a helper whose every mount access has 2 s, the archive in the sandbox; one
# WAL file in pg_wal. The bound is shortened by rebase: the spec's default is the same code.
bounded_helper() {
  stub logger
  mkdir -p "$SANDBOX/archive/arch" "$SANDBOX/pgdata/pg_wal/archive_status"
  stub mountpoint 'exit 0'
  helper=$(rebase "$HELPER_IN_BUNDLE" ARCHIVE="$SANDBOX/archive/arch" CALL_TIMEOUT=2 \
    DROPPED_FILE="$SANDBOX/state/dropped-wal" PUBLISHED_DROPPED="$SANDBOX/archive/dropped-wal")
  cd "$SANDBOX/pgdata"
  echo wal1 >pg_wal/000000010000000000000001
}

# hangs: the body of a stub that never ends on its own, as a command in a dead NFS wait
hangs='exec sleep 1000'

# ends_within SECONDS: the last `run` took at most SECONDS (its start in $started)
ends_within() {
  local took=$((SECONDS - started))
  ((took <= $1)) || { echo "took ${took} s, more than $1 s"; return 1; }
}

@test "archive helper: a copy that hangs is killed at the bound: the call fails, says what timed out, leaves no name" {
  bounded_helper
  stub cp "$hangs"
  started=$SECONDS
  run -1 "$helper" pg_wal/000000010000000000000001 000000010000000000000001
  ends_within 5
  [[ $output == *"timed out: copying pg_wal/000000010000000000000001 to "*" did not end within "*" s (primary.archive_call_timeout 2 s): the archive mount "*" does not answer"* ]]
  calls '^logger -p daemon.err -t pitr-archive-wal -- timed out: copying ' | grep -q .
  [ -z "$(find "$SANDBOX/archive/arch" -name 000000010000000000000001)" ]
}

@test "archive helper: an fsync that hangs fails the call within the bound; no segment name appears" {
  bounded_helper
  stub sync "$hangs"
  started=$SECONDS
  run -1 "$helper" pg_wal/000000010000000000000001 000000010000000000000001
  ends_within 5
  [[ $output == *"timed out: fsync of "* ]]
  [ -z "$(find "$SANDBOX/archive/arch" -name 000000010000000000000001)" ]
  # the temporary copy is left alone: removing it would hang as well
  [[ $output == *"left "*".000000010000000000000001."*".tmp behind (the mount does not answer)"* ]]
}

@test "archive helper: an fsync that fails (EIO from a soft mount) fails the call; the name never appears" {
  bounded_helper
  stub sync 'echo "sync: error syncing: Input/output error" >&2; exit 1'
  run -1 "$helper" pg_wal/000000010000000000000001 000000010000000000000001
  [[ $output == *"could not fsync "* ]]
  [ -z "$(find "$SANDBOX/archive/arch" -name '*000000010000000000000001*')" ]
  # the retry, the server back, archives it
  rm "$STUB_BIN/sync"
  run -0 "$helper" pg_wal/000000010000000000000001 000000010000000000000001
  cmp pg_wal/000000010000000000000001 "$SANDBOX/archive/arch/$(TZ=UTC date +%F)/000000010000000000000001"
}

@test "archive helper: the mount point check hanging fails the call within the bound, before any copy" {
  [[ $ARCHIVE_METHOD == nfs ]] || skip "archive.method standby: the archive is local, no mount to check"
  bounded_helper
  stub mountpoint "$hangs"
  stub cp
  started=$SECONDS
  run -1 "$helper" pg_wal/000000010000000000000001 000000010000000000000001
  ends_within 5
  [[ $output == *"timed out: the mount point check of "* ]]
  [ -z "$(calls '^cp ')" ]
}

@test "archive helper: the look for an earlier copy and the link are bounded too" {
  bounded_helper
  # a link that hangs (the copy done): the call fails, the name is not reported archived
  stub ln "$hangs"
  run -1 "$helper" pg_wal/000000010000000000000001 000000010000000000000001
  [[ $output == *"timed out: linking "* ]]
  # the look for an earlier copy of the name: a bash of its own under timeout, which hangs here
  rm "$STUB_BIN/ln"
  stub timeout '[[ $4 != */bash ]] || set -- "$1" "$2" "$3" sleep 1000; exec /usr/bin/timeout "$@"'
  started=$SECONDS
  run -1 "$helper" pg_wal/000000010000000000000001 000000010000000000000001
  ends_within 5
  [[ $output == *"timed out: looking for 000000010000000000000001 in "* ]]
}

@test "archive helper: the whole call shares one bound: slow accesses add up to it, not past it" {
  bounded_helper
  # each within the bound of 2 s alone, together past it: one bound per access would succeed
  stub cp 'sleep 1.5; exec /bin/cp "$@"'
  stub chmod 'sleep 1.5; exec /bin/chmod "$@"'
  started=$SECONDS
  run -1 "$helper" pg_wal/000000010000000000000001 000000010000000000000001
  ends_within 4
  [[ $output == *"timed out: "@(copying|chmod)" "* ]]
  [ -z "$(find "$SANDBOX/archive/arch" -name 000000010000000000000001)" ]
}

@test "archive helper: past the queue limit with the mount hanging, it drops and counts without touching the mount" {
  [[ $ARCHIVE_METHOD == nfs ]] || skip "archive.method standby: the archive is local, no mount to check"
  bounded_helper
  # every access to the mount goes through timeout: a stub that hangs and logs
  stub timeout "$hangs"
  stub mountpoint "$hangs"
  printf '0123456789abcdef' >pg_wal/000000010000000000000001
  helper=$(rebase "$helper" QUEUE_MAX=16)
  touch pg_wal/archive_status/00000001000000000000000{1,2}.ready
  started=$SECONDS
  run -0 "$helper" pg_wal/000000010000000000000001 000000010000000000000001
  ends_within 1
  [[ $output == *"DROPPED 000000010000000000000001, not archived"* ]]
  read -r files _ last _ <"$SANDBOX/state/dropped-wal"
  [ "$files $last" = "1 000000010000000000000001" ]
  [ -z "$(calls '^(timeout|mountpoint) ')" ]
  # under the limit the same helper goes to the mount, and that hangs: bounded by the stub's
  # timeout here, so only its call is checked
  rm pg_wal/archive_status/000000010000000000000002.ready
  stub timeout 'exit 137'
  run -1 "$helper" pg_wal/000000010000000000000001 000000010000000000000001
  calls '^timeout -s KILL [0-9]+ mountpoint -q ' | grep -q .
}

@test "archive helper: without timeout(1) it refuses (exit 3) before touching the mount" {
  bounded_helper
  # a PATH of the tools the helper needs up to the mount, without timeout
  mkdir -p "$SANDBOX/bin"
  for tool in bash find wc stat logger mountpoint cp mkdir date; do
    ln -sf "$(command -v "$tool")" "$SANDBOX/bin/$tool"
  done
  PATH="$SANDBOX/bin" run -3 "$helper" pg_wal/000000010000000000000001 000000010000000000000001
  [[ $output == *"refusing: timeout (coreutils) not found, needed to bound each access to "* ]]
  [ -z "$(ls -A "$SANDBOX/archive/arch")" ]
}

@test "archive helper: a drop count that cannot be published in time is logged; the archived WAL file is still success" {
  dropping_helper
  run -0 "$helper" pg_wal/000000010000000000000001 000000010000000000000001
  rm pg_wal/archive_status/*.ready
  helper=$(rebase "$helper" CALL_TIMEOUT=2)
  # cmp is only used on the drop count here (no earlier copy of the name)
  stub cmp "$hangs"
  run -0 "$helper" pg_wal/000000010000000000000002 000000010000000000000002
  [[ $output == *"timed out: comparing the drop count with "* ]]
  [[ $output == *"could not copy the drop count "* ]]
  rm "$STUB_BIN/cmp"
  cmp pg_wal/000000010000000000000002 "$SANDBOX/archive/arch/$(TZ=UTC date +%F)/000000010000000000000002"
}

@test "archive mount: a mount point check that hangs fails the boot script within the bound" {
  [[ $ARCHIVE_METHOD == nfs ]] || skip "archive.method standby: the archive is local, no mount to check"
  stub mountpoint "$hangs"
  stub mount
  script=$(rebase "$MOUNT_IN_BUNDLE" MOUNTPOINT="$SANDBOX/pgarch" CALL_TIMEOUT=1)
  started=$SECONDS
  run -1 "$script"
  ends_within 4
  [[ $output == *"timed out: the mount point check of $SANDBOX/pgarch did not end within 1 s"* ]]
  [ -z "$(calls '^mount ')" ]
}
