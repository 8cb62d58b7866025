# The worlds of the replica suites (replica.bats, the replica tests of faults.bats): the
# source's datasets and send command, the sender's accounts, the replica's key and the pull
# through an ssh stub that runs the source's send command. Each *_world sets the stubs and
# the script under test; each *_files / replica_zfs makes what lies in the fake ZFS and the
# sandbox (what each_fault starts every run from).
# shellcheck shell=bash

# replica_scripts: the scripts of the replica roles this bundle has (empty: none), a logger
# stub (replicate.sh logs to syslog too) and the clock at 2026-12-07 12:00:30 UTC
# shellcheck disable=SC2034 # the variables it sets are for the tests that call it
replica_scripts() {
  stub logger
  SEND=$(script_of replica-send)
  SENDER=$(script_of replica-sender)
  KEYS=$(script_of replica-key)
  REPLICATE=$(script_of replicate)
  INSTALL=$(script_of replicate-install)
  set_clock "2026-12-07 12:00:30"
}

# constant SCRIPT NAME: the value of a readonly constant of SCRIPT (one-line statements)
constant() {
  (
    eval "$(grep -E '^readonly [A-Z_]+=' "$1" | grep -v '\\$' | grep -v '^readonly PROG=')"
    printf '%s\n' "${!2}"
  )
}

need() {
  [[ -n ${!1} ]] || skip "no ${2} in this bundle"
}

# source_world SEND_SCRIPT: the source's pool and allowed datasets, each with two of our
# snapshots (an hour apart) carrying properties, one foreign snapshot and one named like ours
# but not a UTC time
# shellcheck disable=SC2034 # the variables it sets are for the tests that call it
source_world() {
  local ds kind prefix
  ALLOWED_LINES=$(constant "$1" ALLOWED)
  "$STUB_BIN/zpool" create -o ashift=12 "${ALLOWED_LINES%%/*}" mirror /dev/a /dev/b
  while IFS=$'\t' read -r ds kind prefix; do
    "$STUB_BIN/zfs" create -p "$ds"
    set_clock "2026-12-07 10:00:00"
    "$STUB_BIN/zfs" snapshot -o pitr-bundle:redo-wal=000000010000000000000010 "$ds@${prefix}20261207T100000Z"
    set_clock "2026-12-07 10:30:00"
    "$STUB_BIN/zfs" snapshot "$ds@manual"
    set_clock "2026-12-07 11:00:00"
    "$STUB_BIN/zfs" snapshot -o pitr-bundle:redo-wal=000000010000000000000020 -o pitr-bundle:timeline=1 "$ds@${prefix}20261207T110000Z"
    set_clock "2026-12-07 11:30:00"
    "$STUB_BIN/zfs" snapshot "$ds@${prefix}2026"
  done <<<"$ALLOWED_LINES"
  set_clock "2026-12-07 12:00:30"
  : >"$STUB_LOG"
  CLUSTER_DS=$(awk -F '\t' '$2 == "cluster" { print $1; exit }' <<<"$ALLOWED_LINES")
  ARCHIVE_DS=$(awk -F '\t' '$2 == "archive" { print $1; exit }' <<<"$ALLOWED_LINES")
  PREFIX=$(awk -F '\t' -v d="$CLUSTER_DS" '$1 == d { print $3 }' <<<"$ALLOWED_LINES")
}

# send_command SCRIPT: the send command with its state folder in the sandbox
send_command() {
  rebase "$1" STATE_DIR="$SANDBOX/send-state"
}

# shellcheck disable=SC2034 # the variables it sets are for the tests that call it
send_world() {
  need SEND "replica send command (role replica-send)"
  source_world "$SEND"
  CMD=$(send_command "$SEND")
  HOLD_TAG=$(constant "$SEND" HOLD_TAG)
}

refs_of() {
  local f=$FAKE_ZFS_STATE/snaps/${1//\//%}
  cut -d' ' -f2 "$f"
}

# sender_world: the source's datasets, accounts as files (getent passwd/shadow, useradd
# making a locked account, usermod -p), fake ownership, a public key file; SCRIPT: the setup
# with its paths in the sandbox
# shellcheck disable=SC2034 # the variables it sets are for the tests that call it
sender_world() {
  need SENDER "replica sender setup (role replica-sender)"
  fake_ownership
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub getent 'case $1 in passwd | shadow) grep "^$2:" "$SANDBOX/.$1" ;; *) exit 2 ;; esac'
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub useradd 'echo "${*: -1}:x:2001:2001::/home:/bin/sh" >>"$SANDBOX/.passwd"; echo "${*: -1}:!:20000::::::" >>"$SANDBOX/.shadow"'
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub usermod '[[ $1 == -p ]] && sed -i "s/^$3:[^:]*:/$3:$2:/" "$SANDBOX/.shadow"'
  stub visudo 'exit 0'
  SEND_USER=$(constant "$SENDER" SEND_USER)
  SCRIPT=$(rebase_installer "$SENDER" SEND_HOME="$SANDBOX/home" SEND_COMMAND="$SANDBOX/sbin/pitr-send" \
    STATE_DIR="$SANDBOX/send-state" "?SUDOERS_FILE=$SANDBOX/sudoers.d/pitr-send")
  KEYS_FILE=$SANDBOX/home/.ssh/authorized_keys
  PUB=$SANDBOX/replica.pub
  SUDO=$(constant "$SENDER" SUDOERS_FILE)
  sender_files
}

# sender_files: what sender_world has in the fake ZFS and the sandbox (each_fault's world)
sender_files() {
  source_world "$SEND"
  : >"$SANDBOX/.passwd"
  : >"$SANDBOX/.shadow"
  mkdir -p "$SANDBOX/sudoers.d"  # as /etc/sudoers.d is (the rule is installed without -D)
  echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHbXWm2K1s9bK5o2vJq0Jc7aX1k3uQ2yXzU5d2c4f6Ab root@replica" >"$PUB"
}

# shellcheck disable=SC2034 # the variables it sets are for the tests that call it
key_world() {
  need KEYS "replica key script (role replica-key)"
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub ssh-keygen 'while (($#)); do [[ $1 == -f ]] && f=$2; [[ $1 == -C ]] && c=$2; shift; done
echo "PRIVATE" >"$f"; echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeyOfTheReplicaForTheSuite0123456789 $c" >"$f.pub"'
  fake_ownership
  SCRIPT=$(rebase "$KEYS" KEY_FILE="$SANDBOX/replica/id_ed25519" KNOWN_HOSTS="$SANDBOX/replica/known_hosts")
  HOSTKEY=$SANDBOX/host.pub
  key_files
}

# key_files: the source's host key file in the sandbox (each_fault's world)
key_files() {
  echo "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKeyOfTheSource0123456789abcdef root@source" >"$HOSTKEY"
}

# replica_world: the source's send command from the source's bundle beside this one, an ssh
# stub that runs it with the request in SSH_ORIGINAL_COMMAND (the last argument), as sshd's
# forced command would; the source's datasets and the replica's pool in one fake ZFS; the
# replica's key and known hosts in the sandbox. SCRIPT: replicate.sh with its paths there
# shellcheck disable=SC2034 # the variables it sets are for the tests that call it
replica_world() {
  need REPLICATE "replication script (role replicate)"
  local source host
  source=$(constant "$REPLICATE" SOURCE)
  host=$(query "m['host']")
  SOURCE_SEND=${BUNDLE%/*}/$source/host/pitr-send-$host.sh
  [[ -f $SOURCE_SEND ]] || skip "the source's bundle ($source) is not beside this one: build both (pitr-bundle build specs/) to test the pull against its send command"
  CMD=$(send_command "$SOURCE_SEND")
  HOLD_TAG=$(constant "$SOURCE_SEND" HOLD_TAG)
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub ssh 'SSH_ORIGINAL_COMMAND=${*: -1} exec "$SEND_CMD"'
  export SEND_CMD=$CMD
  replica_zfs
  STATE=$BATS_TEST_TMPDIR/replica.state
  ROOT=$(constant "$REPLICATE" ROOT)
  COPIES=$(constant "$REPLICATE" COPIES)
  SCRIPT=$(rebase "$REPLICATE" KEY_FILE="$SANDBOX/replica/id_ed25519" KNOWN_HOSTS="$SANDBOX/replica/known_hosts" \
    STATE_FILE="$STATE" LOCK_FILE="$BATS_TEST_TMPDIR/replicate.lock" "$@")
  COPY_OF_CLUSTER=$(awk -F '\t' -v s="$CLUSTER_DS" '$3 == s { print $4 }' <<<"$COPIES")
  COPY_OF_ARCHIVE=$(awk -F '\t' -v s="$ARCHIVE_DS" '$3 == s { print $4 }' <<<"$COPIES")
}

# replica_zfs: what replica_world has in the fake ZFS and the sandbox (each_fault's world): the
# source's datasets, the replica's pool, its key and the source's host key
replica_zfs() {
  source_world "$SOURCE_SEND"
  "$STUB_BIN/zpool" create -o ashift=12 "$(query "facts['pool']['name']")" mirror /dev/c /dev/d
  mkdir -p "$SANDBOX/replica"
  echo key >"$SANDBOX/replica/id_ed25519"
  echo "192.168.1.200 ssh-ed25519 AAAA" >"$SANDBOX/replica/known_hosts"
  : >"$STUB_LOG"
}

snaps_of() {
  "$STUB_BIN/zfs" list -H -t snapshot -o name -d 1 -s creation "$1" | sed 's/.*@//'
}
guid() {
  "$STUB_BIN/zfs" get -H -p -o name,property,value guid "$1" | cut -f3
}

# need_role ROLE: skip unless the bundle has a script of ROLE
need_role() {
  [[ -n $(script_of "$1") ]] || skip "no script of role $1 in this bundle"
}
