#!/usr/bin/env bats
# The Nagios check (role "monitor") and its installer, with stubs. Its OK path on a healthy
# host is proven for real (tests/test_pitr_zfs_pg.py).

load test_helper

setup() {
  setup_stubs
  POOL=$(query "facts['pool']['name']")
  # the check is installed, not run from the bundle (no run order); its installer has one
  CHECK=$BUNDLE/$(query "[f['path'] for f in m['files'] if f['role'] == 'monitor' and f['order'] is None][0]")
  INSTALLER=$BUNDLE/$(query "[f['path'] for f in m['files'] if f['role'] == 'monitor' and f['order'] is not None][0]")
  stub zpool 'printf "ONLINE\t12%%\n"'
  stub pgrep 'exit 1'
}

@test "monitor: one status line with perfdata, CRITICAL naming each cluster whose standby is down" {
  run -2 "$CHECK"
  [ "${#lines[@]}" -eq 1 ]
  [[ $output == "PITR CRITICAL - "*" | "* ]]
  for cluster in $(query "[c['name'] for c in facts['clusters']]"); do
    [[ $output == *"$cluster: standby not running"* ]]
  done
  [[ $output == *"pool_capacity=12%;"* ]]
}

@test "monitor: a degraded pool is CRITICAL" {
  stub zpool 'printf "DEGRADED\t12%%\n"'
  run -2 "$CHECK" --cluster none
  [[ $output == "PITR CRITICAL - pool $POOL is DEGRADED"* ]]
}

@test "monitor: a pool over the warning capacity is a WARNING" {
  warn=$(query "facts['monitor']['pool_capacity_warn']")
  stub zpool "printf 'ONLINE\t%s%%\n' $warn"
  run -1 "$CHECK" --cluster none
  [[ $output == "PITR WARNING - pool $POOL $warn% full"* ]]
}

@test "monitor: UNKNOWN (3) when not run as root" {
  stub id 'echo 1000'
  run -3 "$CHECK"
  [[ $output == "PITR UNKNOWN - must run as root"* ]]
}

@test "monitor installer: the sudo rule is checked with visudo before it is installed" {
  stub visudo 'exit 1'
  installer=$(rebase "$INSTALLER" CHECK="$SANDBOX/pitr-check" SUDOERS_FILE="$SANDBOX/sudoers")
  run -1 "$installer"
  [[ $output == *"visudo rejects the generated sudo rule"* ]]
  [ ! -e "$SANDBOX/sudoers" ]
}
