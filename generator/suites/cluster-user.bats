#!/usr/bin/env bats
# The per-cluster user script (role "user"), with accounts and paths in a sandbox.

# What this suite reads of its cluster, and all it sees of the bundle (generator/views.py):
# view roles: user bash-profile
# view facts: name user

load test_helper

make_world() {
  setup_stubs
  fake_ownership
  fake_users
  USER_NAME=$(cluster_fact "['user']")
  mkdir -p "$SANDBOX/mnt"
  USER_SCRIPT=$(rebase "$(cluster_script user)" OS_HOME="$SANDBOX/home" \
    PGDATA="$SANDBOX/mnt/pg_root" SOFT_BAK="$SANDBOX/pg_home/soft_bak" \
    PG_HOME_DIR="$SANDBOX/pg_home" LOG_DIR="$SANDBOX/pg_log" MOUNTPOINT="$SANDBOX/mnt")
}

setup_file() {
  world_setup_file make_world
}

setup() {
  world_reset
}

@test "user: creates the group and user, then its folders with owners and modes" {
  run -0 "$USER_SCRIPT"
  [ "$(calls '^groupadd')" = "groupadd $USER_NAME" ]
  calls "^useradd -m -d $SANDBOX/home -g $USER_NAME -s /bin/bash .* $USER_NAME\$" | grep -q .
  [ "$(stat -c '%U %G %a' "$SANDBOX/mnt/pg_root")" = "$USER_NAME $USER_NAME 700" ]
  [ "$(stat -c '%U %G %a' "$SANDBOX/pg_home/soft_bak")" = "$USER_NAME $USER_NAME 750" ]
  [ "$(stat -c '%U %G %a' "$SANDBOX/pg_log")" = "$USER_NAME $USER_NAME 750" ]
}

@test "user: installs the bundle's .bash_profile, byte for byte" {
  run -0 "$USER_SCRIPT"
  cmp "$SANDBOX/home/.bash_profile" "$BUNDLE/$(query "[f['path'] for f in m['files'] if f['role'] == 'bash-profile' and f['cluster'] == '$(cluster_fact "['name']")'][0]")"
}

@test "user: a second run changes nothing" {
  run -0 "$USER_SCRIPT"
  : >"$STUB_LOG"
  run -0 "$USER_SCRIPT"
  [ -z "$(calls '^(groupadd|useradd|install)')" ]
  [[ $output == *"user $USER_NAME: already present"* ]]
  [[ $output == *".bash_profile: already up to date"* ]]
}

@test "user: --dry-run creates nothing" {
  run -0 "$USER_SCRIPT" --dry-run
  [ -z "$(calls '^(groupadd|useradd|install)')" ]
  [ ! -e "$SANDBOX/mnt/pg_root" ]
  [[ $output == *"would run: useradd"* ]]
}

@test "user: refuses when the cluster's dataset is not mounted" {
  rmdir "$SANDBOX/mnt"
  run -3 "$USER_SCRIPT"
  [[ $output == *"run the datasets script first"* ]]
  [ -z "$(calls '^(groupadd|useradd|install)')" ]
}
