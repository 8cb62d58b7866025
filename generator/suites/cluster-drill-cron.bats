#!/usr/bin/env bats
# The drill's installer (role "drill-cron"): it installs the bundle's drill and restore.sh,
# checked against SHA256SUMS, and the drill's cron file.

# What this suite reads of its cluster, and all it sees of the bundle (generator/views.py):
# view roles: drill-cron drill restore
# view facts: name user drill.schedule

load test_helper

make_world() {
  setup_cluster_user
  CLUSTER=$(cluster_fact "['name']")
  DRILL=$(cluster_script drill)
  [[ -n $DRILL ]] || { PITR_WORLD_SKIP="drills are off for $CLUSTER"; return 0; }
  : >"$STUB_LOG"
}

setup_file() {
  world_setup_file make_world
}

setup() {
  world_reset
}

@test "drill installer: installs restore.sh and the drill (root, 0500) and the cron file (0644)" {
  fake_ownership
  installer=$(rebase_installer "$(cluster_script drill-cron)" DRILL_SCRIPT="$SANDBOX/sbin/pitr-drill" \
    RESTORE_SCRIPT="$SANDBOX/sbin/pitr-restore" CRON_FILE="$SANDBOX/cron.d/drill")
  run -0 "$installer"
  cmp "$SANDBOX/sbin/pitr-drill" "$DRILL"
  cmp "$SANDBOX/sbin/pitr-restore" "$(cluster_script restore)"
  [ "$(stat -c '%U %a' "$SANDBOX/sbin/pitr-drill")" = "root 500" ]
  cron=$BUNDLE/$(query "[f['path'] for f in m['files'] if f['role'] == 'drill-cron' and f['cluster'] == '$CLUSTER' and not f['path'].endswith('.sh')][0]")
  cmp "$SANDBOX/cron.d/drill" "$cron"
  grep -Eq "^$(cluster_fact "['drill']['schedule']" | sed 's/\*/\\*/g') root /usr/local/sbin/pitr-drill-$CLUSTER$" "$cron"
  : >"$STUB_LOG"
  run -0 "$installer"
  [ -z "$(calls '^install')" ]
}

@test "drill installer: a restore.sh beside it that differs from SHA256SUMS is refused (3), nothing installed" {
  fake_ownership
  copy=$(bundle_copy)
  restore=$(cluster_script restore)
  installer=$(rebase_installer "$copy/$(cluster_script drill-cron | sed "s|^$BUNDLE/||")" \
    DRILL_SCRIPT="$SANDBOX/sbin/pitr-drill" RESTORE_SCRIPT="$SANDBOX/sbin/pitr-restore" \
    CRON_FILE="$SANDBOX/cron.d/drill")
  printf '# altered\n' >>"$copy/${restore#"$BUNDLE"/}"
  run -3 "$installer"
  [[ $output == *"${restore#"$BUNDLE"/} does not match the bundle's SHA256SUMS"* ]]
  [ -z "$(calls '^install')" ]
  [ ! -e "$SANDBOX/sbin/pitr-restore" ] && [ ! -e "$SANDBOX/sbin/pitr-drill" ]
}
