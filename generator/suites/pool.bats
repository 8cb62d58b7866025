#!/usr/bin/env bats
# The pool script (role "pool"), against a stateful fake zpool/zfs.

load test_helper

make_world() {
  setup_stubs
  POOL_SCRIPT=$(script_of pool)
  POOL=$(query "facts['pool']['name']")
  stub realpath 'exit 0'
  stub blkid 'exit 2'
}

setup_file() {
  world_setup_file make_world
}

setup() {
  world_reset
  mapfile -t DEVICES < <(query "facts['pool']['devices']")
}

expected_create() {
  local line="zpool create -o ashift=$(query "facts['pool']['ashift']")" item
  while read -r item; do line+=" -o $item"; done < <(query "[f'{k}={v}' for k, v in sorted(facts['pool']['pool_options'].items())]")
  while read -r item; do line+=" -O $item"; done < <(query "[f'{k}={v}' for k, v in sorted(facts['pool']['root_properties'].items())]")
  local mountpoint
  mountpoint=$(query "facts['pool']['mountpoint']")
  [[ -z $mountpoint ]] || line+=" -m $mountpoint"
  line+=" $POOL"
  while read -r item; do line+=" $item"; done < <(query "facts['pool']['vdev_args']")
  printf '%s\n' "$line"
}

@test "pool: creates the pool with the spec's layout and root properties in one call" {
  run -0 "$POOL_SCRIPT" --yes
  [[ $output == *"pool $POOL created"* ]]
  [ "$(changing_calls)" = "$(expected_create)" ]
}

@test "pool: probes every device before creating" {
  run -0 "$POOL_SCRIPT" --yes
  for device in "${DEVICES[@]}"; do
    calls "^blkid -p -o export -s TYPE -s PTTYPE -- $device\$" | grep -q .
  done
}

@test "pool: a second run changes nothing and says the pool is already present" {
  run -0 "$POOL_SCRIPT" --yes
  : >"$STUB_LOG"
  run -0 "$POOL_SCRIPT" --yes
  [[ $output == *"already present with the spec's layout"* ]]
  [[ $output == *"root properties already as the spec says"* ]]
  [ -z "$(changing_calls)" ]
}

@test "pool: --dry-run prints the create command and changes nothing" {
  run -0 "$POOL_SCRIPT" --dry-run
  [[ $output == *"dry-run: would run: zpool create"* ]]
  [ -z "$(changing_calls)" ]
  [ ! -e "$FAKE_ZFS_STATE/pools/$POOL" ]
}

@test "pool: refuses without --yes when there is no terminal to ask on" {
  run -4 "$POOL_SCRIPT" </dev/null
  [[ $output == *"refusing without --yes"* ]]
  [ -z "$(changing_calls)" ]
}

@test "pool: --dry-run away from the host (no device there) still shows zpool create" {
  stub realpath 'exit 1'
  run -0 "$POOL_SCRIPT" --dry-run
  [[ $output == *"dry-run: ${#DEVICES[@]} of ${#DEVICES[@]} devices missing on this machine"* ]]
  [[ $output == *"would run: zpool create "*" $POOL "* ]]
  [ -z "$(changing_calls)" ]
}

@test "pool: refuses a missing device and names it" {
  stub realpath "[[ \${*: -1} == '${DEVICES[1]}' ]] && exit 1; exit 0"
  run -3 "$POOL_SCRIPT" --yes
  [[ $output == *"device ${DEVICES[1]} is missing"* ]]
  [ -z "$(changing_calls)" ]
}

@test "pool: refuses a device that carries a pool label or partition table, unless --force" {
  stub blkid "[[ \${*: -1} == '${DEVICES[0]}' ]] && { echo TYPE=zfs_member; exit 0; }; exit 2"
  run -3 "$POOL_SCRIPT" --yes
  [[ $output == *"${DEVICES[0]} carries TYPE=zfs_member"* ]]
  [ -z "$(changing_calls)" ]
  run -0 "$POOL_SCRIPT" --yes --force
  calls "^zpool create -f " | grep -q .
}

@test "pool: refuses a device that belongs to another imported pool, even with --force" {
  "$STUB_BIN/zpool" create other mirror "${DEVICES[2]}" /dev/other-disk
  : >"$STUB_LOG"
  run -3 "$POOL_SCRIPT" --yes --force
  [[ $output == *"${DEVICES[2]} belongs to an imported pool"* ]]
  [ -z "$(changing_calls)" ]
}

@test "pool: an existing pool with another layout stops the script and shows both layouts" {
  "$STUB_BIN/zpool" create -o ashift=12 "$POOL" mirror /dev/a /dev/b
  : >"$STUB_LOG"
  run -3 "$POOL_SCRIPT" --yes
  [[ $output == *"exists with another layout"* ]]
  [[ $output == *"data mirror a b"* ]]
  [ -z "$(changing_calls)" ]
}

@test "pool: an existing pool with drifted root properties gets only those set" {
  run -0 "$POOL_SCRIPT" --yes
  "$STUB_BIN/zfs" set atime=on "$POOL"
  : >"$STUB_LOG"
  run -0 "$POOL_SCRIPT" --yes
  [ "$(changing_calls)" = "zfs set atime=$(query "facts['pool']['root_properties']['atime']") $POOL" ]
}

@test "pool: refuses to run when not root" {
  stub id 'echo 1000'
  run -3 "$POOL_SCRIPT" --yes
  [[ $output == *"must run as root"* ]]
}

@test "pool: a failing zpool create stops with the step named and a non-zero exit" {
  FAKE_FAIL='zpool create*' run -1 "$POOL_SCRIPT" --yes
  [[ $output == *"step 'create pool $POOL' failed"* ]]
}

@test "pool: rejects unknown arguments with usage and exit 2" {
  run -2 "$POOL_SCRIPT" --bogus
  [[ $output == *"Usage:"* ]]
}
