#!/usr/bin/env bats
# The datasets script (role "datasets"), against a stateful fake zpool/zfs.

load test_helper

make_world() {
  setup_stubs
  DATASETS_SCRIPT=$(script_of datasets)
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

