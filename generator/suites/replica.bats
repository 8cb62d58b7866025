#!/usr/bin/env bats
# Replica hosts (a second copy pulled with zfs send/receive over ssh), with stubs. On the
# source's bundle: the send command (role replica-send, sshd's forced command) and its setup
# (replica-sender). On the replica's bundle: the key script (replica-key), the pull
# (replicate) talking through an ssh stub to the source's own send command (from the source's
# bundle beside this one), its installer (replicate-install) and the monitor's check of the
# copy. Both sides share one fake ZFS (fake_zfs.bash: send writes a text stream, receive reads
# it). Proven for real on zfs-fuse and sshd by tests/test_replica_zfs_fuse.py.

load test_helper
load replica_world

setup() {
  setup_stubs
  replica_scripts
}

# --- the source's side -----------------------------------------------------------------------

@test "send command: list prints our snapshots only, oldest first, with guid, creation and the pitr-bundle properties" {
  send_world
  run -0 "$CMD" --request "list $CLUSTER_DS"
  [ "${#lines[@]}" -eq 2 ]
  [[ ${lines[0]} == "${PREFIX}20261207T100000Z"$'\t'[0-9]*$'\t'"$(date -u -d '2026-12-07 10:00:00' +%s)"$'\t'000000010000000000000010$'\t'* ]]
  [[ ${lines[1]} == "${PREFIX}20261207T110000Z"$'\t'* ]]
  [[ $(cut -f 7 <<<"${lines[1]}") == 1 ]]  # pitr-bundle:timeline
  [[ $output != *manual* ]]
  # from sshd: the request in SSH_ORIGINAL_COMMAND, the same answer
  SSH_ORIGINAL_COMMAND="list $CLUSTER_DS" run -0 "$CMD"
  [ "${#lines[@]}" -eq 2 ]
}

@test "send command: snapshot takes one of a WAL archive now and prints its name; the same second again takes none" {
  send_world
  run -0 --separate-stderr "$CMD" --request "snapshot $ARCHIVE_DS"
  [ "$output" = "${PREFIX}20261207T120030Z" ]
  [ -e "$FAKE_ZFS_STATE/snaps/${ARCHIVE_DS//\//%}@${PREFIX}20261207T120030Z" ]
  : >"$STUB_LOG"
  run -0 --separate-stderr "$CMD" --request "snapshot $ARCHIVE_DS"
  [ "$output" = "${PREFIX}20261207T120030Z" ]
  [ -z "$(calls '^zfs snapshot')" ]
}

@test "send command: a cluster's dataset is never snapshotted for the replica (3, nothing taken)" {
  send_world
  run -3 "$CMD" --request "snapshot $CLUSTER_DS"
  [[ $output == *"only a WAL archive is snapshotted"* ]]
  [ -z "$(calls '^zfs snapshot')" ]
}

@test "send command: send full (-) and incremental (-I), a recognisable stream of exactly those snapshots" {
  send_world
  run -0 --separate-stderr "$CMD" --request "send $CLUSTER_DS - ${PREFIX}20261207T100000Z"
  [ "${lines[0]}" = "FAKE-ZFS-STREAM - plain" ]
  [[ ${lines[1]} == "snap ${PREFIX}20261207T100000Z "* ]]
  [ "${#lines[@]}" -eq 2 ]
  [ -n "$(calls "^zfs send $CLUSTER_DS@${PREFIX}20261207T100000Z\$")" ]
  run -0 --separate-stderr "$CMD" --request "send $CLUSTER_DS ${PREFIX}20261207T100000Z ${PREFIX}20261207T110000Z"
  [[ ${lines[0]} == "FAKE-ZFS-STREAM "[0-9]*" plain" ]]
  # -I: every snapshot in between (a foreign one too: the replica gets what the source has)
  [[ ${lines[1]} == "snap manual "* && ${lines[2]} == "snap ${PREFIX}20261207T110000Z "* ]]
  [ -n "$(calls "^zfs send -I @${PREFIX}20261207T100000Z $CLUSTER_DS@${PREFIX}20261207T110000Z\$")" ]
}

@test "send command: an encrypted dataset is sent raw (-w): the replica gets ciphertext, no key" {
  send_world
  "$STUB_BIN/zfs" set encryption=aes-256-gcm "$CLUSTER_DS"
  run -0 --separate-stderr "$CMD" --request "send $CLUSTER_DS - ${PREFIX}20261207T100000Z"
  [ "${lines[0]}" = "FAKE-ZFS-STREAM - raw" ]
  [ -n "$(calls "^zfs send -w $CLUSTER_DS@")" ]
  run -0 --separate-stderr "$CMD" --request "send $CLUSTER_DS ${PREFIX}20261207T100000Z ${PREFIX}20261207T110000Z"
  [ -n "$(calls "^zfs send -w -I @")" ]
}

@test "send command: refuses (3) datasets it does not copy, names not ours, snapshots not there, wrong word counts and unknown requests, changing nothing" {
  send_world
  local request
  for request in "list zp9/other" "list ${CLUSTER_DS}/child" "list ${CLUSTER_DS%/*}" \
    "send $CLUSTER_DS - manual" "send $CLUSTER_DS - ${PREFIX}2026" "send $CLUSTER_DS manual ${PREFIX}20261207T110000Z" \
    "send $CLUSTER_DS - ${PREFIX}20261207T090000Z" "send zp9/other - ${PREFIX}20261207T100000Z" \
    "confirm $CLUSTER_DS manual" "confirm zp9/other ${PREFIX}20261207T100000Z" "snapshot zp9/other" \
    "list" "list $CLUSTER_DS extra" "send $CLUSTER_DS -" "send $CLUSTER_DS - a b" "confirm $CLUSTER_DS" \
    "snapshot" "resume" "destroy $CLUSTER_DS@manual" "receive $CLUSTER_DS" "rollback $CLUSTER_DS@x"; do
    run "$CMD" --request "$request"
    [ "$status" -eq 3 ] || { echo "not refused: $request ($status): $output"; return 1; }
    [[ $output == *refused* || $output == *"no snapshot"* ]] || { echo "$request: $output"; return 1; }
  done
  [ -z "$(calls '^zfs (snapshot|hold|release|send|destroy|set)')" ]
  [ ! -e "$SANDBOX/send-state/${CLUSTER_DS//\//%}.held" ]
}

@test "send command: shell metacharacters in a request, or one over 9000 characters, are refused (3) before anything runs" {
  send_world
  local request
  for request in "list $CLUSTER_DS;id" "list \$(id)" 'list `id`' "list $CLUSTER_DS|id" "list $CLUSTER_DS&&id" \
    "list $CLUSTER_DS>x" "list ${CLUSTER_DS}"$'\n'"id" "list '$CLUSTER_DS'" "list $CLUSTER_DS*" "list ~root" \
    "list $(printf 'a%.0s' {1..9000})"; do
    SSH_ORIGINAL_COMMAND=$request run "$CMD"
    [ "$status" -eq 3 ] || { echo "not refused: $request ($status): $output"; return 1; }
    [[ $output == *"refused: a request is words of"* ]] || { echo "$request: $output"; return 1; }
  done
  [ -z "$(calls '^zfs')" ]
}

@test "send command: no request is a usage error (2)" {
  send_world
  run -2 "$CMD"
  [[ $output == *"no request"* ]]
}

@test "send command: resume sends the rest of an interrupted send whose token names an allowed snapshot; other tokens are refused" {
  send_world
  mkdir -p "$FAKE_ZFS_STATE/tokens"
  echo "@${PREFIX}20261207T100000Z $CLUSTER_DS@${PREFIX}20261207T110000Z" >"$FAKE_ZFS_STATE/tokens/1-abc-42"
  run -0 --separate-stderr "$CMD" --request "resume 1-abc-42"
  [[ ${lines[0]} == "FAKE-ZFS-STREAM "[0-9]*" plain resumed" ]]
  [ -n "$(calls '^zfs send -t 1-abc-42$')" ]
  # a token of a dataset this replica does not copy
  "$STUB_BIN/zfs" create -p zp9/other
  "$STUB_BIN/zfs" snapshot "zp9/other@${PREFIX}20261207T100000Z"
  echo "- zp9/other@${PREFIX}20261207T100000Z" >"$FAKE_ZFS_STATE/tokens/1-def-42"
  run -3 "$CMD" --request "resume 1-def-42"
  [[ $output == *"zp9/other is not a dataset"* ]]
  # a token naming a snapshot not ours, one zfs cannot read, one that is not a token
  echo "- $CLUSTER_DS@manual" >"$FAKE_ZFS_STATE/tokens/1-ghi-42"
  run -3 "$CMD" --request "resume 1-ghi-42"
  run -3 "$CMD" --request "resume 1-unknown"
  [[ $output == *"cannot read the resume token"* ]]
  run -3 "$CMD" --request "resume 1_abc"
  [[ $output == *"not a resume token"* ]]
  [ -z "$(calls '^zfs send -t 1-(def|ghi|unknown)')" ]
}

@test "send command: confirm holds the snapshot, is idempotent, and releases the previous one on the next confirm" {
  send_world
  local old=$CLUSTER_DS@${PREFIX}20261207T100000Z new=$CLUSTER_DS@${PREFIX}20261207T110000Z
  run -0 "$CMD" --request "confirm $CLUSTER_DS ${PREFIX}20261207T100000Z"
  [ "$(refs_of "$old")" = 1 ]
  [ "$(<"$SANDBOX/send-state/${CLUSTER_DS//\//%}.held")" = "${PREFIX}20261207T100000Z" ]
  # repeated (the answer was lost): the tag is there already, nothing more
  run -0 "$CMD" --request "confirm $CLUSTER_DS ${PREFIX}20261207T100000Z"
  [ "$(refs_of "$old")" = 1 ]
  [ -z "$(calls '^zfs release')" ]
  run -0 "$CMD" --request "confirm $CLUSTER_DS ${PREFIX}20261207T110000Z"
  [ "$(refs_of "$new")" = 1 ]
  [ "$(refs_of "$old")" = 0 ]
  [ -n "$(calls "^zfs release $HOLD_TAG $old\$")" ]
  [ "$(<"$SANDBOX/send-state/${CLUSTER_DS//\//%}.held")" = "${PREFIX}20261207T110000Z" ]
  # the previous one destroyed meanwhile: nothing to release
  run -0 "$CMD" --request "confirm $ARCHIVE_DS ${PREFIX}20261207T100000Z"
  "$STUB_BIN/zfs" release "$HOLD_TAG" "$ARCHIVE_DS@${PREFIX}20261207T100000Z"
  "$STUB_BIN/zfs" destroy -d "$ARCHIVE_DS@${PREFIX}20261207T100000Z"
  : >"$STUB_LOG"
  run -0 "$CMD" --request "confirm $ARCHIVE_DS ${PREFIX}20261207T110000Z"
  [ -z "$(calls '^zfs release')" ]
}

@test "send command: a release that fails keeps the previous one recorded; the next confirm releases it" {
  send_world
  run -0 "$CMD" --request "confirm $CLUSTER_DS ${PREFIX}20261207T100000Z"
  FAKE_FAIL="zfs release *" run -1 "$CMD" --request "confirm $CLUSTER_DS ${PREFIX}20261207T110000Z"
  [[ $output == *"step 'confirm $CLUSTER_DS@${PREFIX}20261207T110000Z' failed"* ]]
  [ "$(<"$SANDBOX/send-state/${CLUSTER_DS//\//%}.held")" = "${PREFIX}20261207T100000Z" ]
  run -0 "$CMD" --request "confirm $CLUSTER_DS ${PREFIX}20261207T110000Z"
  [ "$(refs_of "$CLUSTER_DS@${PREFIX}20261207T100000Z")" = 0 ]
  [ "$(refs_of "$CLUSTER_DS@${PREFIX}20261207T110000Z")" = 1 ]
}

# --- the source's setup of the sender --------------------------------------------------------

@test "sender setup: without a key it makes the user (unlocked), its folders, the command and the delegation, then exits 3" {
  sender_world
  run -3 "$SCRIPT"
  [[ $output == *"cannot log in yet: no key"* ]]
  [ -n "$(calls "^useradd .*$SEND_USER\$")" ]
  grep -q "^$SEND_USER:\*:" "$SANDBOX/.shadow"
  cmp "$SANDBOX/sbin/pitr-send" "$SEND"
  [ "$(stat -c '%U %G %a' "$SANDBOX/home/.ssh")" = "root $SEND_USER 750" ]
  [ "$(stat -c '%U %G %a' "$SANDBOX/send-state")" = "$SEND_USER $SEND_USER 700" ]
  [ ! -e "$KEYS_FILE" ]
  if [[ -z $SUDO ]]; then
    local ds
    while IFS=$'\t' read -r ds _; do
      [ -n "$(calls "^zfs allow -u $SEND_USER send,snapshot,mount,hold,release $ds\$")" ]
    done <<<"$ALLOWED_LINES"
  fi
}

@test "sender setup: the key goes in as one restricted line (from the replica's address, the forced command); a re-run keeps it and changes nothing" {
  sender_world
  run -0 "$SCRIPT" --public-key "$PUB"
  local forced address
  forced=$(constant "$SENDER" FORCED)
  address=$(constant "$SENDER" REPLICA_ADDRESS)
  grep -qxF "restrict,from=\"$address\",command=\"$forced\" $(cut -d' ' -f1,2 "$PUB")" "$KEYS_FILE"
  [ "$(stat -c '%U %G %a' "$KEYS_FILE")" = "root $SEND_USER 640" ]
  local before
  before=$(world_state)
  : >"$STUB_LOG"
  run -0 "$SCRIPT"
  [[ $output == *"keeping the replica's key already installed"* ]]
  [ "$(world_state)" = "$before" ]
  [ -z "$(calls '^(useradd|usermod|install)')" ]
}

@test "sender setup: a key file that is not one public key line is refused (3), the keys file untouched" {
  sender_world
  run -0 "$SCRIPT" --public-key "$PUB"
  local good before bad=$SANDBOX/bad.pub
  good=$(<"$KEYS_FILE")
  before=$(sha256sum <"$KEYS_FILE")
  for content in "" "$(<"$PUB")"$'\n'"$(<"$PUB")" "ssh-dss AAAAB3NzaC1kc3MAAACBAP1/U4EddRIpUt9KnC7s5Of2EbdSPO9EAMMeP4C2USZpRV1A root" \
    "command=\"/bin/sh\" $(<"$PUB")" "ssh-ed25519 not*base64!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!" "ssh-ed25519 AAAA"; do
    printf '%s\n' "$content" >"$bad"
    run -3 "$SCRIPT" --public-key "$bad"
    [ "$(sha256sum <"$KEYS_FILE")" = "$before" ] || { echo "changed by: $content"; return 1; }
  done
  run -3 "$SCRIPT" --public-key "$SANDBOX/none.pub"
  [[ $output == *"no such file"* ]]
  [ "$(<"$KEYS_FILE")" = "$good" ]
}

@test "sender setup: --remove takes out the key block, the command and the delegation or sudo rule; the user and holds stay" {
  sender_world
  echo "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7 other@host" >"$SANDBOX/other"
  mkdir -p "$SANDBOX/home/.ssh"
  cp "$SANDBOX/other" "$KEYS_FILE"
  run -0 "$SCRIPT" --public-key "$PUB"
  run -0 "$SCRIPT" --remove
  [ "$(<"$KEYS_FILE")" = "$(<"$SANDBOX/other")" ]
  [ ! -e "$SANDBOX/sbin/pitr-send" ]
  grep -q "^$SEND_USER:" "$SANDBOX/.passwd"
  if [[ -z $SUDO ]]; then
    [ -n "$(calls "^zfs unallow -u $SEND_USER ")" ]
    ! grep -rq '^allow:' "$FAKE_ZFS_STATE/ds" || false
  else
    [ ! -e "$SANDBOX/sudoers.d/pitr-send" ]
  fi
  # again: nothing left to take out
  : >"$STUB_LOG"
  run -0 "$SCRIPT" --remove
  [ -z "$(calls '^(rm|install)')" ]
}

@test "sender setup: --dry-run changes nothing, with or without a key" {
  sender_world
  local before
  before=$(world_state)
  run -0 "$SCRIPT" --dry-run --public-key "$PUB"
  [[ $output == *"dry-run: would run: useradd"* ]]
  [ "$(world_state)" = "$before" ]
  [ -z "$(changing_calls | grep -Ev '^(zfs list|stat|cp|sha256sum|visudo|date)' || true)" ]
  run "$SCRIPT" --dry-run --remove
  [ "$(world_state)" = "$before" ]
}

@test "sender setup: refused (3) while a dataset it grants does not exist yet" {
  sender_world
  [[ -z $SUDO ]] || skip "send_privilege sudo: no delegation, no dataset needed"
  "$STUB_BIN/zfs" destroy -R "$CLUSTER_DS"
  run -3 "$SCRIPT" --public-key "$PUB"
  [[ $output == *"$CLUSTER_DS does not exist yet"* ]]
  [ ! -e "$KEYS_FILE" ]
}

@test "sender setup, send_privilege sudo: a rule visudo accepts lets the user run the command alone as root; no delegation" {
  sender_world
  [[ -n $SUDO ]] || skip "send_privilege delegation in this bundle (zfs allow)"
  run -0 "$SCRIPT" --public-key "$PUB"
  [ -n "$(calls '^visudo -c -q -f ')" ]
  grep -qxF "$SEND_USER ALL=(root) NOPASSWD: $SANDBOX/sbin/pitr-send" "$SANDBOX/sudoers.d/pitr-send"
  grep -qF 'env_keep += "SSH_ORIGINAL_COMMAND"' "$SANDBOX/sudoers.d/pitr-send"
  [ "$(stat -c '%U %G %a' "$SANDBOX/sudoers.d/pitr-send")" = "root root 440" ]
  [ -z "$(calls '^zfs allow')" ]
  [[ $(constant "$SENDER" FORCED) == *"sudo -n $(constant "$SENDER" SEND_COMMAND)" ]]
  # a rule visudo refuses is not installed
  rm "$SANDBOX/sudoers.d/pitr-send"
  stub visudo 'exit 1'
  run -1 "$SCRIPT" --public-key "$PUB"
  [[ $output == *"visudo refuses"* ]]
  [ ! -e "$SANDBOX/sudoers.d/pitr-send" ]
}

# --- the replica's key -----------------------------------------------------------------------

@test "replica key: makes the key pair once and prints its public line; without the source's host key it exits 3" {
  key_world
  run -3 "$SCRIPT"
  [[ $output == *"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyOfTheReplica"* ]]
  [[ $output == *"no host key of"* ]]
  [ -f "$SANDBOX/replica/id_ed25519" ]
  [ "$(stat -c '%U %G %a' "$SANDBOX/replica")" = "root root 700" ]
  : >"$STUB_LOG"
  run -3 "$SCRIPT"
  [ -z "$(calls '^ssh-keygen')" ]
  [[ $output == *"already present"* ]]
}

@test "replica key: records the source's host key under its address; again: already up to date" {
  key_world
  run -0 "$SCRIPT" --source-host-key "$HOSTKEY"
  local address port known_as
  address=$(constant "$KEYS" SOURCE_ADDRESS)
  port=$(constant "$KEYS" SSH_PORT)
  known_as=$address
  ((port == 22)) || known_as="[$address]:$port"
  [ "$(<"$SANDBOX/replica/known_hosts")" = "$known_as $(cut -d' ' -f1,2 "$HOSTKEY")" ]
  run -0 "$SCRIPT" --source-host-key "$HOSTKEY"
  [[ $output == *"already up to date"* ]]
  run -0 "$SCRIPT"
}

@test "replica key: a host key file that is not one key line is refused (3), nothing recorded" {
  key_world
  local bad=$SANDBOX/bad.pub content
  for content in "" "$(<"$HOSTKEY")"$'\n'"$(<"$HOSTKEY")" "ssh-dss AAAAB3NzaC1kc3MAAACBAP1/U4EddRIpUt9KnC7s5Of2EbdSPO9E x" \
    "192.168.1.200 $(<"$HOSTKEY")" "ssh-ed25519 %%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%%"; do
    printf '%s\n' "$content" >"$bad"
    run -3 "$SCRIPT" --source-host-key "$bad"
    [ ! -e "$SANDBOX/replica/known_hosts" ] || { echo "recorded: $content"; return 1; }
  done
  run -3 "$SCRIPT" --source-host-key "$SANDBOX/none"
  [[ $output == *"no such file"* ]]
}

@test "replica key: --dry-run changes nothing" {
  key_world
  run -0 "$SCRIPT" --dry-run --source-host-key "$HOSTKEY"
  [[ $output == *"would run: ssh-keygen"* && $output == *"would write"* ]]
  [ ! -e "$SANDBOX/replica" ]
}

# --- the pull --------------------------------------------------------------------------------

@test "replicate: the first run pulls each dataset full then incremental, copies the properties, holds the newest on the source, records each" {
  replica_world
  run -0 "$SCRIPT"
  local cluster kind source copy prefix newest
  [ "$(constant "$REPLICATE" ROOT)" = "$ROOT" ]
  "$STUB_BIN/zfs" list -H -o name "$ROOT"
  [ "$("$STUB_BIN/zfs" get -H -o value readonly "$ROOT")" = on ]
  while IFS=$'\t' read -r cluster kind source copy prefix; do
    # every snapshot the source has up to its newest of ours, with the same guid (what a
    # later incremental needs)
    newest=$(snaps_of "$source" | grep "^$prefix[0-9]*T[0-9]*Z\$" | tail -n 1)
    [ "$(snaps_of "$copy")" = "$(snaps_of "$source" | sed "/^$newest\$/q")" ]
    [ "$(guid "$copy@$newest")" = "$(guid "$source@$newest")" ]
    [ -n "$(calls "^zfs receive -u $copy\$")" ]
    [ "$("$STUB_BIN/zfs" get -H -o value pitr-bundle:redo-wal "$copy@${prefix}20261207T110000Z")" = 000000010000000000000020 ]
    [ "$("$STUB_BIN/zfs" get -H -o value pitr-bundle:timeline "$copy@${prefix}20261207T110000Z")" = 1 ]
    [ "$(refs_of "$source@$newest")" = 1 ]
    grep -qP "^\Q$copy\E\tok\t[0-9]+\t$newest\t[0-9]+\$" "$STATE"
  done <<<"$COPIES"
  # an archive's newest is the snapshot it asked the source for, this run
  [ -e "$FAKE_ZFS_STATE/snaps/${COPY_OF_ARCHIVE//\//%}@${PREFIX}20261207T120030Z" ]
  [ -z "$(calls '^zfs receive -u -s')" ]
  [ "$(head -n 1 "$STATE")" = "# dataset"$'\t'"result"$'\t'"at (epoch)"$'\t'"newest snapshot"$'\t'"its creation (epoch)" ]
  [ "$(grep -c $'\tok\t' "$STATE")" -eq "$(wc -l <<<"$COPIES")" ]
}

@test "replicate: the next run sends only what is new, moves the hold; with nothing new a cluster's copy is up to date" {
  replica_world
  run -0 "$SCRIPT"
  local first=$CLUSTER_DS@${PREFIX}20261207T110000Z
  set_clock "2026-12-07 13:00:00"
  "$STUB_BIN/zfs" snapshot "$CLUSTER_DS@${PREFIX}20261207T130000Z"
  : >"$STUB_LOG"
  run -0 "$SCRIPT"
  [ -n "$(calls "^zfs send -I @${PREFIX}20261207T110000Z $CLUSTER_DS@${PREFIX}20261207T130000Z\$")" ]
  [ -z "$(calls "^zfs send $CLUSTER_DS@")" ]
  [ "$(refs_of "$first")" = 0 ]
  [ "$(refs_of "$CLUSTER_DS@${PREFIX}20261207T130000Z")" = 1 ]
  : >"$STUB_LOG"
  run -0 "$SCRIPT"
  [[ $output == *"$COPY_OF_CLUSTER: up to date (${PREFIX}20261207T130000Z)"* ]]
  [ -z "$(calls "^zfs send .*$CLUSTER_DS@")" ]
}

@test "replicate: a copy with no snapshot in common fails (1), named in the state file; every other dataset is still pulled" {
  replica_world
  "$STUB_BIN/zfs" create -p "$COPY_OF_CLUSTER"
  "$STUB_BIN/zfs" snapshot "$COPY_OF_CLUSTER@${PREFIX}20261207T100000Z"  # same name, another guid
  run -1 "$SCRIPT"
  [[ $output == *"$COPY_OF_CLUSTER has no snapshot in common"* ]]
  [[ $output == *"1 dataset(s) of"*"not pulled"* ]]
  [[ $output == *"step '"*"$CLUSTER_DS -> $COPY_OF_CLUSTER' failed (no common snapshot)"* ]]
  grep -qP "^\Q$COPY_OF_CLUSTER\E\tfailed: no common snapshot\t" "$STATE"
  [ "$(grep -c $'\tok\t' "$STATE")" -eq "$(($(wc -l <<<"$COPIES") - 1))" ]
  [ -z "$(calls "^zfs receive .*$COPY_OF_CLUSTER\$")" ]
}

@test "replicate: OpenZFS receives with -s; a resume token on the copy asks the source to resume first" {
  replica_world
  export FAKE_OPENZFS=1
  run -0 "$SCRIPT"
  [ -n "$(calls "^zfs receive -u -s $COPY_OF_CLUSTER\$")" ]
  # an incremental receive interrupted: the copy holds a token of it
  set_clock "2026-12-07 13:00:00"
  "$STUB_BIN/zfs" snapshot "$CLUSTER_DS@${PREFIX}20261207T130000Z"
  mkdir -p "$FAKE_ZFS_STATE/tokens"
  echo "@${PREFIX}20261207T110000Z $CLUSTER_DS@${PREFIX}20261207T130000Z" >"$FAKE_ZFS_STATE/tokens/1-f00d-99"
  "$STUB_BIN/zfs" set receive_resume_token=1-f00d-99 "$COPY_OF_CLUSTER"
  : >"$STUB_LOG"
  run -0 "$SCRIPT"
  [[ $output == *"an interrupted receive of $COPY_OF_CLUSTER: resuming it"* ]]
  [ -n "$(calls '^zfs send -t 1-f00d-99$')" ]
  [ "$("$STUB_BIN/zfs" get -H -o value receive_resume_token "$COPY_OF_CLUSTER")" = - ]
  [ -e "$FAKE_ZFS_STATE/snaps/${COPY_OF_CLUSTER//\//%}@${PREFIX}20261207T130000Z" ]
  # resumed to the newest: no second send of it
  [ -z "$(calls "^zfs send -I .*$CLUSTER_DS@")" ]
}

@test "replicate: an encrypted source dataset arrives raw" {
  replica_world
  "$STUB_BIN/zfs" set encryption=aes-256-gcm "$CLUSTER_DS"
  run -0 "$SCRIPT"
  [ -n "$(calls "^zfs send -w $CLUSTER_DS@")" ]
  [ -n "$(calls "^zfs send -w -I @.* $CLUSTER_DS@")" ]
}

@test "replicate: prunes the copy by this host's keep counts, never the newest, never a held snapshot" {
  replica_world KEEP_HOURLY=1 KEEP_DAILY=0 KEEP_WEEKLY=0 KEEP_MONTHLY=0 KEEP_YEARLY=0
  local hour
  for hour in 05 06 07 08; do
    set_clock "2026-12-07 $hour:00:00"
    "$STUB_BIN/zfs" snapshot "$CLUSTER_DS@${PREFIX}20261207T${hour}0000Z"
  done
  set_clock "2026-12-07 12:00:30"
  # a first pull without pruning, a hold put on one copy snapshot by hand, then a pull that prunes
  run -0 "$SCRIPT" --no-prune
  [ -z "$(calls '^zfs destroy')" ]
  "$STUB_BIN/zfs" hold keep "$COPY_OF_CLUSTER@${PREFIX}20261207T060000Z"
  run -0 "$SCRIPT"
  [ "$(snaps_of "$COPY_OF_CLUSTER" | tr '\n' ' ')" = "${PREFIX}20261207T060000Z manual ${PREFIX}2026 " ] ||
    [ "$(snaps_of "$COPY_OF_CLUSTER" | grep -c "^${PREFIX}20261207T")" -eq 2 ]
  [ -e "$FAKE_ZFS_STATE/snaps/${COPY_OF_CLUSTER//\//%}@${PREFIX}20261207T060000Z" ]
  [ -e "$FAKE_ZFS_STATE/snaps/${COPY_OF_CLUSTER//\//%}@${PREFIX}20261207T110000Z" ]
  [ ! -e "$FAKE_ZFS_STATE/snaps/${COPY_OF_CLUSTER//\//%}@${PREFIX}20261207T050000Z" ]
  [ ! -e "$FAKE_ZFS_STATE/snaps/${COPY_OF_CLUSTER//\//%}@${PREFIX}20261207T100000Z" ]
  # not ours: never pruned
  [ -e "$FAKE_ZFS_STATE/snaps/${COPY_OF_CLUSTER//\//%}@manual" ]
  # the source keeps all of its own
  [ -e "$FAKE_ZFS_STATE/snaps/${CLUSTER_DS//\//%}@${PREFIX}20261207T050000Z" ]
}

@test "replicate: --cluster pulls only that cluster's datasets; a cluster it does not copy is a usage error" {
  replica_world
  local cluster
  cluster=$(awk -F '\t' -v s="$CLUSTER_DS" '$3 == s { print $1 }' <<<"$COPIES")
  run -0 "$SCRIPT" --cluster "$cluster"
  [ "$(grep -vc '^#' "$STATE")" -eq "$(awk -F '\t' -v c="$cluster" '$1 == c' <<<"$COPIES" | wc -l)" ]
  ! grep -v '^#' "$STATE" | grep -vq "/$cluster"$'\t' || false
  # a full run, then one cluster again: the others keep the result of the full run, once each
  run -0 "$SCRIPT"
  local full
  full=$(grep -v '^#' "$STATE" | grep -v "/$cluster"$'\t' | sort)
  [ -n "$full" ]
  run -0 "$SCRIPT" --cluster "$cluster"
  [ "$(grep -v '^#' "$STATE" | grep -v "/$cluster"$'\t' | sort)" = "$full" ]
  [ "$(grep -vc '^#' "$STATE")" -eq "$(wc -l <<<"$COPIES")" ]
  run -2 "$SCRIPT" --cluster nosuchcluster
  [[ $output == *"nosuchcluster is not a cluster this host copies"* ]]
}

@test "replicate: --dry-run asks the source what it has and changes nothing, here or there" {
  replica_world
  local before
  before=$(world_state)
  run -0 "$SCRIPT" --dry-run
  [[ $output == *"dry-run: would pull 'send $CLUSTER_DS - ${PREFIX}20261207T100000Z'"* ]]
  [[ $output == *"dry-run: would ask"*"to hold"* ]]
  [ "$(world_state)" = "$before" ] || { diff <(echo "$before") <(world_state); return 1; }
  [ -z "$(calls '^zfs (create|receive|set|hold|release|snapshot|destroy)')" ]
  [ ! -e "$STATE" ]
}

@test "replicate: refused (3) while another run holds the lock, and without a key or the source's host key" {
  replica_world
  local holder
  flock "$BATS_TEST_TMPDIR/replicate.lock" sleep 30 &
  holder=$!
  sleep 0.3
  run -3 "$SCRIPT"
  [[ $output == *"another replication run holds"* ]]
  kill "$holder"
  wait "$holder" || true
  : >"$SANDBOX/replica/known_hosts"
  run -3 "$SCRIPT"
  [[ $output == *"no host key of"* ]]
  rm "$SANDBOX/replica/id_ed25519"
  run -3 "$SCRIPT"
  [[ $output == *"run host/25-replica-key.sh first"* ]]
  [ -z "$(calls '^(ssh|zfs receive)')" ]
}

@test "replicate: a source with no snapshot of ours yet fails that dataset only" {
  replica_world
  "$STUB_BIN/zfs" destroy -d "$CLUSTER_DS@${PREFIX}20261207T100000Z"
  "$STUB_BIN/zfs" destroy -d "$CLUSTER_DS@${PREFIX}20261207T110000Z"
  run -1 "$SCRIPT"
  grep -qP "^\Q$COPY_OF_CLUSTER\E\tfailed: no snapshot on the source\t" "$STATE"
}

# --- the installer and the monitor -----------------------------------------------------------

@test "replication installer: installs the bundle's script (0500) and cron file (0644) byte for byte, once" {
  need INSTALL "replication installer (role replicate-install)"
  fake_ownership
  local installer cron
  installer=$(rebase_installer "$INSTALL" REPLICATE_SCRIPT="$SANDBOX/sbin/pitr-replicate" CRON_FILE="$SANDBOX/cron.d/pitr-replicate")
  run -0 "$installer"
  cmp "$SANDBOX/sbin/pitr-replicate" "$REPLICATE"
  cron=$BUNDLE/$(query "[f['path'] for f in m['files'] if f['role'] == 'replicate-cron-file'][0]")
  cmp "$SANDBOX/cron.d/pitr-replicate" "$cron"
  [ "$(stat -c '%U %a' "$SANDBOX/sbin/pitr-replicate")" = "root 500" ]
  [ "$(stat -c '%U %a' "$SANDBOX/cron.d/pitr-replicate")" = "root 644" ]
  grep -qE "^[^#]* root $(constant "$INSTALL" REPLICATE_SCRIPT)\$" "$cron"
  : >"$STUB_LOG"
  run -0 "$installer"
  [ -z "$(calls '^install')" ]
  # an altered script beside it is refused, nothing installed
  local copy
  copy=$(bundle_copy)
  echo "# changed" >>"$copy/${REPLICATE#"$BUNDLE"/}"
  installer=$(rebase_installer "$copy/${INSTALL#"$BUNDLE"/}" REPLICATE_SCRIPT="$SANDBOX/sbin/other" CRON_FILE="$SANDBOX/cron.d/other")
  run -3 "$installer"
  [ ! -e "$SANDBOX/sbin/other" ]
}

# monitor_world: the replica's check with the state file in the sandbox, its pool healthy
monitor_world() {
  need REPLICATE "replication script (role replicate)"
  load monitor_fixtures
  CHECK=$BUNDLE/$(query "[f['path'] for f in m['files'] if f['role'] == 'monitor' and f['order'] is None][0]")
  grep -q '^check_replica()' "$CHECK"
  STATE=$SANDBOX/replica.state
  CHECK=$(rebase "$CHECK" REPLICA_STATE="$STATE")
  set_clock "2026-12-07 12:00:00"
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub zpool 'if [[ $1 == status ]]; then cat "$SANDBOX/zpool-status"; else printf "ONLINE\t12%%\n"; fi'
  # a scrub that found nothing, an hour ago
  zfs_fuse_status "scrub completed after 0h0m with 0 errors on $(date -d '2026-12-07 11:00:00' '+%a %b %e %H:%M:%S %Y')" >"$SANDBOX/zpool-status"
  stub pgrep 'exit 1'
  # the archive dataset's share of the pool: 1 % of 1000 GB
  local pool archive
  pool=$(query "facts['pool']['name']")
  archive=$(query "[d['name'] for d in facts['datasets'] if d['mountpoint'] == facts['archive_root']][0]")
  stub zfs "[[ \$* == 'get -H -p -o name,property,value used,available '* ]] || exit 1
printf '%s\tused\t%s\n%s\tavailable\t%s\n%s\tused\t%s\n' $pool 400000000000 $pool 600000000000 $archive 10000000000"
  COPIES=$(constant "$REPLICATE" COPIES)
  WARN=$(($(constant "$CHECK" REPLICA_LAG_WARN)))
  CRIT=$(($(constant "$CHECK" REPLICA_LAG_CRIT)))
}

# state_lines AGE_OF_ARCHIVE [RESULT]: every copy pulled ok a minute ago; the archives' newest
# snapshot AGE seconds old
state_lines() {
  local now
  now=$(date +%s)
  printf '# dataset\tresult\tat (epoch)\tnewest snapshot\tits creation (epoch)\n' >"$STATE"
  while IFS=$'\t' read -r _ _ _ copy prefix; do
    printf '%s\t%s\t%s\t%s\t%s\n' "$copy" "${2:-ok}" "$((now - 60))" "${prefix}x" "$((now - $1))" >>"$STATE"
  done <<<"$COPIES"
}

@test "monitor on a replica: every copy never pulled is CRITICAL, naming it" {
  monitor_world
  run -2 "$CHECK"
  [[ $output == "PITR CRITICAL - "* ]]
  while IFS=$'\t' read -r _ _ _ copy _; do
    [[ $output == *"$copy: never pulled"* ]]
  done <<<"$COPIES"
}

@test "monitor on a replica: a failed last pull is CRITICAL with its reason" {
  monitor_world
  state_lines 60
  sed -i "2s/\tok\t/\tfailed: no common snapshot\t/" "$STATE"
  run -2 "$CHECK"
  [[ $output == *"the last pull 1m ago failed: no common snapshot"* || $output == *"ago failed: no common snapshot"* ]]
}

@test "monitor on a replica: the archive copy's lag warns, then goes critical, at the spec's thresholds; fresh copies are OK with the lag in the perfdata" {
  monitor_world
  state_lines 60
  run -0 "$CHECK"
  [[ $output == "PITR OK - "*"within its lag"*"'lag_"*"=60s;$WARN;$CRIT"* ]]
  state_lines $((WARN + 60))
  run -1 "$CHECK"
  [[ $output == "PITR WARNING - "*"the newest WAL here is"* ]]
  state_lines $((CRIT + 60))
  run -2 "$CHECK"
  [[ $output == "PITR CRITICAL - "*"the newest WAL here is"* ]]
}

@test "monitor on a replica: an archive copy with no snapshot received is CRITICAL" {
  monitor_world
  state_lines 60
  sed -i "s/\t[0-9]*\$/\t-/" "$STATE"
  run -2 "$CHECK"
  [[ $output == *"no snapshot received"* ]]
}
