#!/usr/bin/env bats
# The snapshot-cron installer (role "snapshot-cron"): snapshot script and /etc/cron.d file.

load test_helper

setup() {
  setup_stubs
  fake_ownership
  CLUSTER=$(cluster_fact "['name']")
  INSTALLER=$(rebase "$BUNDLE/$(query "[f['path'] for f in m['files'] if f['role'] == 'snapshot-cron' and f['cluster'] == '$CLUSTER' and f['path'].endswith('.sh')][0]")" \
    SNAPSHOT_SCRIPT="$SANDBOX/sbin/pitr-snapshot" RETENTION_SCRIPT="$SANDBOX/sbin/pitr-wal-retention" \
    CRON_FILE="$SANDBOX/cron.d/pitr")
  CRON_IN_BUNDLE=$BUNDLE/$(query "[f['path'] for f in m['files'] if f['role'] == 'snapshot-cron' and f['cluster'] == '$CLUSTER' and not f['path'].endswith('.sh')][0]")
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
  [ ! -e "$SANDBOX/sbin/pitr-snapshot" ]
  run -0 "$INSTALLER"
  : >"$STUB_LOG"
  run -0 "$INSTALLER"
  [ -z "$(calls '^install')" ]
}
