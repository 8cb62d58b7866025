#!/usr/bin/env bats
# The NFS exports script (role "nfs-exports"), with its target paths moved into a sandbox.

load test_helper

make_world() {
  setup_stubs
  fake_ownership
  stub getent 'echo "$2:x:2000:"'
  export EXPORTS_FILE=$SANDBOX/etc/exports
  fake_exportfs
  mkdir -p "$SANDBOX/arch" "$SANDBOX/etc"
  NFS_SCRIPT=$(rebase "$(script_of nfs-exports)" \
    ARCHIVE_ROOT="$SANDBOX/arch" EXPORTS_FILE="$EXPORTS_FILE" \
    PORTS_FILE="$SANDBOX/etc/nfs.conf.d/pitr-bundle.conf")
}

setup_file() {
  world_setup_file make_world
}

setup() {
  world_reset
  # the clusters that archive over NFS; the others' archives come from their standbys
  mapfile -t CLUSTERS < <(query "[c['name'] for c in facts['clusters'] if c['archive']['method'] == 'nfs']")
  mapfile -t STANDBY_ARCHIVED < <(query "[c['name'] for c in facts['clusters'] if c['archive']['method'] == 'standby']")
}

# the tests of a bundle that exports (some cluster archives over NFS), and of one that does
# not (the script then takes out what an earlier bundle wrote)
needs_exports() {
  ((${#CLUSTERS[@]} > 0)) || skip "no cluster of this bundle archives over NFS"
}
needs_no_export() {
  ((${#CLUSTERS[@]} == 0)) || skip "clusters of this bundle archive over NFS"
}

# an exports file and the NFS server's table as an earlier bundle left them, beside a line
# of another service
earlier_exports() {
  local tag
  tag="pitr-bundle $(query "m['host']")"
  archive_root=$SANDBOX/arch  # the script's ARCHIVE_ROOT, rebased
  printf '/srv/other 10.0.0.9(ro)\n# BEGIN %s\n%s/pg1 10.0.0.1(rw,no_root_squash,sync)\n# END %s\n' \
    "$tag" "$archive_root" "$tag" >"$SANDBOX/etc/exports"
  mkdir -p "$SANDBOX/etc/nfs.conf.d"
  printf '[mountd]\n# BEGIN %s\nport=892\n# END %s\n' "$tag" "$tag" >"$SANDBOX/etc/nfs.conf.d/pitr-bundle.conf"
  cp "$SANDBOX/etc/exports" "$SANDBOX/.kernel-exports"
}

@test "nfs-exports: creates each cluster's archive folders owned by root and its group, 2750" {
  needs_exports
  run -0 "$NFS_SCRIPT"
  for cluster in "${CLUSTERS[@]}"; do
    user=$(query "[c['user'] for c in facts['clusters'] if c['name'] == '$cluster'][0]")
    [ "$(stat -c '%U %G %a' "$SANDBOX/arch/$cluster")" = "root $user 2750" ]
    [ "$(stat -c '%U %G %a' "$SANDBOX/arch/$cluster/arch")" = "root $user 2750" ]
  done
}

@test "nfs-exports: exports each archive to the primary and its HA partner, rw,no_root_squash,sync" {
  needs_exports
  run -0 "$NFS_SCRIPT"
  archive_root=$(query "facts['archive_root']")
  for cluster in "${CLUSTERS[@]}"; do
    grep -qE "^$archive_root/$cluster( [^ ]+\(rw,no_root_squash,sync\))+\$" "$SANDBOX/etc/exports"
  done
  for cluster in "${STANDBY_ARCHIVED[@]}"; do
    run ! grep -q "^$archive_root/$cluster " "$SANDBOX/etc/exports"
    [ ! -e "$SANDBOX/arch/$cluster" ]
  done
  [ "$(grep -c '^# BEGIN pitr-bundle' "$SANDBOX/etc/exports")" -eq 1 ]
  calls '^exportfs -ra$' | grep -q .
}

@test "nfs-exports: pins the runbook's NFS ports" {
  needs_exports
  run -0 "$NFS_SCRIPT"
  grep -q '^port=892$' "$SANDBOX/etc/nfs.conf.d/pitr-bundle.conf" ||
    grep -q '^MOUNTD_PORT=892$' "$SANDBOX/etc/nfs.conf.d/pitr-bundle.conf"
}

@test "nfs-exports: keeps the other lines of the exports file and adds no duplicate on re-runs" {
  needs_exports
  printf '/srv/other 10.0.0.9(ro)\n' >"$SANDBOX/etc/exports"
  run -0 "$NFS_SCRIPT"
  cp "$SANDBOX/etc/exports" "$BATS_TEST_TMPDIR/first"
  : >"$STUB_LOG"
  run -0 "$NFS_SCRIPT"
  cmp "$SANDBOX/etc/exports" "$BATS_TEST_TMPDIR/first"
  grep -qx '/srv/other 10.0.0.9(ro)' "$SANDBOX/etc/exports"
  [ -z "$(changing_calls | grep -Ev '^(stat |exportfs -s$)')" ]
  [[ $output == *"already up to date"* ]]
  [[ $output == *"the exports are loaded"* ]]
}

@test "nfs-exports: --dry-run shows the diff and changes nothing" {
  needs_exports
  run -0 "$NFS_SCRIPT" --dry-run
  [ ! -e "$SANDBOX/etc/exports" ]
  [ -z "$(ls -A "$SANDBOX/arch")" ]
  [[ $output == *"would write $SANDBOX/etc/exports"* ]]
  [ -z "$(calls '^(install|exportfs|cp|mkdir)')" ]
}

@test "nfs-exports: refuses when a cluster's group does not exist yet" {
  needs_exports
  stub getent 'exit 2'
  run -3 "$NFS_SCRIPT"
  [[ $output == *"run the cluster's user script first"* ]]
  [ -z "$(calls '^(install|exportfs)')" ]
}

@test "nfs-exports: loads the exports when a run wrote the file but stopped before loading it" {
  needs_exports
  run -0 "$NFS_SCRIPT"
  rm "$SANDBOX/.kernel-exports"
  : >"$STUB_LOG"
  run -0 "$NFS_SCRIPT"
  [[ $output == *"already up to date"* ]]
  calls '^exportfs -ra$' | grep -q .
  cmp "$SANDBOX/.kernel-exports" "$SANDBOX/etc/exports"
}

@test "nfs-exports (no NFS cluster): takes out the earlier bundle's exports and ports, keeps the other lines, unloads" {
  needs_no_export
  earlier_exports
  run -0 "$NFS_SCRIPT"
  [ "$(cat "$SANDBOX/etc/exports")" = "/srv/other 10.0.0.9(ro)" ]
  [ "$(cat "$SANDBOX/etc/nfs.conf.d/pitr-bundle.conf")" = "[mountd]" ]
  calls '^exportfs -ra$' | grep -q .
  run ! grep -q "^$archive_root/" "$SANDBOX/.kernel-exports"
  [ -f "$SANDBOX/etc/exports.pitr-bundle.bak" ]
  # a second run changes nothing and says so
  : >"$STUB_LOG"
  run -0 "$NFS_SCRIPT"
  [ -z "$(changing_calls | grep -Ev '^(stat |exportfs -s$)')" ]
  [[ $output == *"no archive folder is exported"* ]]
}

@test "nfs-exports (no NFS cluster): --dry-run shows what goes and changes nothing; nothing to take out is said" {
  needs_no_export
  earlier_exports
  cp "$SANDBOX/etc/exports" "$BATS_TEST_TMPDIR/before"
  run -0 "$NFS_SCRIPT" --dry-run
  cmp "$SANDBOX/etc/exports" "$BATS_TEST_TMPDIR/before"
  [[ $output == *"would write $SANDBOX/etc/exports"* ]]
  [ -z "$(calls '^(install|exportfs -ra|cp)')" ]
  rm "$SANDBOX/etc/exports" "$SANDBOX/etc/nfs.conf.d/pitr-bundle.conf" "$SANDBOX/.kernel-exports"
  run -0 "$NFS_SCRIPT"
  [[ $output == *"absent, no pitr-bundle"* ]]
  [ ! -e "$SANDBOX/etc/exports" ]
}

@test "nfs-exports (no NFS cluster): unloads when a run took the lines out but stopped before unloading" {
  needs_no_export
  earlier_exports
  run -0 "$NFS_SCRIPT"
  printf '%s/pg1\n' "$archive_root" >"$SANDBOX/.kernel-exports"  # the table as before the run
  : >"$STUB_LOG"
  run -0 "$NFS_SCRIPT"
  calls '^exportfs -ra$' | grep -q .
}
