#!/usr/bin/env bats
# Faults: for the pool and datasets scripts, a zfs/zpool change that fails at step k (every k)
# stops the script with the step named and a non-zero exit; running it again once the fault
# is gone completes the job, in the same end state as an uninterrupted run.

load test_helper

setup() {
  setup_stubs
  stub realpath 'exit 0'
  stub blkid 'exit 2'
  POOL=$(query "facts['pool']['name']")
}

# end_state: the fake ZFS state, datasets and their properties, in a comparable form
end_state() {
  (cd "$FAKE_ZFS_STATE" && for f in pools/* ds/*; do echo "== $f"; sort "$f"; done)
}

# each_fault SCRIPT [PREPARE]: the check above for every k up to the clean run's change count
each_fault() {
  local script=$1 prepare=${2:-true} clean changes k
  rm -rf "$FAKE_ZFS_STATE"/*
  $prepare
  run -0 "$script" --yes
  clean=$(end_state)
  rm -rf "$FAKE_ZFS_STATE"/*
  $prepare
  FAKE_FAIL_AT=999 run -0 "$script" --yes
  changes=$(cat "$FAKE_ZFS_STATE/.changes")
  ((changes > 0))
  for ((k = 1; k <= changes; k++)); do
    rm -rf "$FAKE_ZFS_STATE"/*
    $prepare
    rm -f "$FAKE_ZFS_STATE/.changes"
    FAKE_FAIL_AT=$k run "$script" --yes
    [ "$status" -ne 0 ] || { echo "fault at change $k: exit 0"; return 1; }
    [[ $output == *"step '"*"' failed"* ]] || { echo "fault at change $k: no step named: $output"; return 1; }
    rm -f "$FAKE_ZFS_STATE/.changes"
    run -0 "$script" --yes
    [ "$(end_state)" = "$clean" ] || { echo "fault at change $k: end state differs"; return 1; }
  done
  echo "# $changes fault positions checked" >&3
}

make_pool() {
  "$STUB_BIN/zpool" create -o ashift=12 "$POOL" mirror /dev/a /dev/b
}

@test "faults: the pool script, failing at each change, stops and then completes on a re-run" {
  # a pool whose root properties drifted: several changes to fail at
  drifted_pool() {
    "$STUB_BIN/zpool" create $(query "' '.join(['-o ashift=' + str(facts['pool']['ashift'])] + [f'-o {k}={v}' for k, v in facts['pool']['pool_options'].items()])") "$POOL" $(query "' '.join(facts['pool']['vdev_args'])")
    for property in $(query "[k for k in facts['pool']['root_properties']]"); do
      "$STUB_BIN/zfs" set "$property=drifted" "$POOL"
    done
  }
  each_fault "$(script_of pool)" drifted_pool
}

@test "faults: the datasets script, failing at each change, stops and then completes on a re-run" {
  each_fault "$(script_of datasets)" make_pool
}
