#!/usr/bin/env bats
# The snapshot-cron installer (role "snapshot-cron"): snapshot script and /etc/cron.d file.

# What this suite reads of its cluster, and all it sees of the bundle (generator/views.py):
# view roles: snapshot-cron snapshot wal-retention
# view facts: name

load test_helper

make_world() {
  setup_stubs
  fake_ownership
  CLUSTER=$(cluster_fact "['name']")
  INSTALLER_IN_BUNDLE=$BUNDLE/$(query "[f['path'] for f in m['files'] if f['role'] == 'snapshot-cron' and f['cluster'] == '$CLUSTER' and f['path'].endswith('.sh')][0]")
  INSTALLER=$(rebase_installer "$INSTALLER_IN_BUNDLE" \
    SNAPSHOT_SCRIPT="$SANDBOX/sbin/pitr-snapshot" RETENTION_SCRIPT="$SANDBOX/sbin/pitr-wal-retention" \
    CRON_FILE="$SANDBOX/cron.d/pitr")
  CRON_IN_BUNDLE=$BUNDLE/$(query "[f['path'] for f in m['files'] if f['role'] == 'snapshot-cron' and f['cluster'] == '$CLUSTER' and not f['path'].endswith('.sh')][0]")
}

setup_file() {
  world_setup_file make_world
}

setup() {
  world_reset
}

@test "snapshot-cron: installs the bundle's snapshot and WAL retention scripts (root, 0500) and cron file (0644)" {
  run -0 "$INSTALLER"
  cmp "$SANDBOX/sbin/pitr-snapshot" "$(cluster_script snapshot)"
  [ "$(stat -c '%U %G %a' "$SANDBOX/sbin/pitr-snapshot")" = "root root 500" ]
  cmp "$SANDBOX/sbin/pitr-wal-retention" "$(cluster_script wal-retention)"
  [ "$(stat -c '%U %G %a' "$SANDBOX/sbin/pitr-wal-retention")" = "root root 500" ]
  cmp "$SANDBOX/cron.d/pitr" "$CRON_IN_BUNDLE"
  [ "$(stat -c '%U %G %a' "$SANDBOX/cron.d/pitr")" = "root root 644" ]
}

@test "snapshot-cron: the cron file names user, PATH, TZ, MAILTO and a five-field schedule" {
  grep -q '^PATH=' "$CRON_IN_BUNDLE"
  grep -q '^MAILTO=' "$CRON_IN_BUNDLE"
  grep -q '^CRON_TZ=' "$CRON_IN_BUNDLE"
  line=$(grep -v '^#' "$CRON_IN_BUNDLE" | grep -v '=' | grep .)
  read -r -a words <<<"$line"
  [ "${#words[@]}" -eq 9 ]
  [[ ${words[6]} == /usr/local/sbin/pitr-snapshot-* ]]
  # the WAL retention only after a snapshot run that succeeded
  [ "${words[7]}" = "&&" ]
  [[ ${words[8]} == /usr/local/sbin/pitr-wal-retention-* ]]
}

@test "snapshot-cron: a second run changes nothing; --dry-run installs nothing" {
  run -0 "$INSTALLER" --dry-run
  [[ $output == *"would install the bundle's $(query "[f['path'] for f in m['files'] if f['role'] == 'snapshot' and f['cluster'] == '$CLUSTER'][0]") as $SANDBOX/sbin/pitr-snapshot"* ]]
  [ ! -e "$SANDBOX/sbin/pitr-snapshot" ]
  run -0 "$INSTALLER"
  : >"$STUB_LOG"
  run -0 "$INSTALLER"
  [[ $output == *"already installed"* ]]
  [ -z "$(calls '^install')" ]
}

@test "snapshot-cron: a snapshot.sh or wal-retention.sh beside it that differs from SHA256SUMS is refused (3), nothing installed" {
  copy=$(bundle_copy)
  installer=$(rebase_installer "$copy/${INSTALLER_IN_BUNDLE#"$BUNDLE"/}" \
    SNAPSHOT_SCRIPT="$SANDBOX/sbin/pitr-snapshot" RETENTION_SCRIPT="$SANDBOX/sbin/pitr-wal-retention" \
    CRON_FILE="$SANDBOX/cron.d/pitr")
  for role in snapshot wal-retention; do
    relative=$(query "[f['path'] for f in m['files'] if f['role'] == '$role' and f['cluster'] == '$CLUSTER'][0]")
    cp "$copy/$relative" "$BATS_TEST_TMPDIR/saved"
    sed -i 's/^set -Eeuo pipefail$/set -Eeuo pipefail; : altered/' "$copy/$relative"
    run -3 "$installer"
    [[ $output == *"$relative does not match the bundle's SHA256SUMS: refusing to install an altered file"* ]]
    cp "$BATS_TEST_TMPDIR/saved" "$copy/$relative"
  done
  [ -z "$(calls '^install')" ]
  [ ! -e "$SANDBOX/sbin/pitr-snapshot" ] && [ ! -e "$SANDBOX/sbin/pitr-wal-retention" ]
  run -0 "$installer"
  cmp "$SANDBOX/sbin/pitr-snapshot" "$(cluster_script snapshot)"
}
