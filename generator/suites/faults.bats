#!/usr/bin/env bats
# Faults: for each script that changes the host, a change that fails at step k (every k: zpool
# and zfs changes, and the commands marked with fault_point) stops the script with the step
# named and a non-zero exit; running it again once the fault is gone completes the job, in the
# same end state as an uninterrupted run (see each_fault in test_helper.bash).

# every fault position of every script: minutes per cluster, so only with `check --deep`
# bats file_tags=deep

load test_helper

setup() {
  setup_stubs
  stub realpath 'exit 0'
  stub blkid 'exit 2'
  POOL=$(query "facts['pool']['name']")
}

# a pool whose root properties drifted: several changes to fail at
drifted_pool() {
  "$STUB_BIN/zpool" create $(query "' '.join(['-o ashift=' + str(facts['pool']['ashift'])] + [f'-o {k}={v}' for k, v in facts['pool']['pool_options'].items()])") "$POOL" $(query "' '.join(facts['pool']['vdev_args'])")
  for property in $(query "[k for k in facts['pool']['root_properties']]"); do
    "$STUB_BIN/zfs" set "$property=drifted" "$POOL"
  done
}

@test "faults: the pool script, failing at each change, stops and then completes on a re-run" {
  each_fault drifted_pool "$(script_of pool)" --yes
}

@test "faults: the datasets script, failing at each change, stops and then completes on a re-run" {
  # with encryption: file, a copy of the script reading its keys in the world (test_helper.bash)
  each_fault make_pool "$(encrypted_copy "$(script_of datasets)")" --yes
}

@test "faults: the NFS exports script, failing at each change, stops and then completes on a re-run" {
  fake_ownership
  stub getent 'echo "$2:x:2000:"'
  export EXPORTS_FILE=$SANDBOX/etc/exports
  fake_exportfs
  fault_point install
  fault_point exportfs '-ra'
  fault_point mkdir
  fault_point cp
  nfs_world() {
    mkdir -p "$SANDBOX/arch" "$SANDBOX/etc"
    # an exports file of the host's own: kept, and backed up on the first change
    printf '/srv/other 10.0.0.9(ro)\n' >"$SANDBOX/etc/exports"
    if [[ $(query "len([d for d in facts['datasets'] if d['nfs_clients']])") == 0 ]]; then
      # a host that exports nothing (every cluster on archive.method standby, a replica): the
      # block an earlier bundle wrote is what it changes, taking it out
      printf '# BEGIN pitr-bundle %s\n%s/pg1 10.0.0.1(rw,no_root_squash,sync)\n# END pitr-bundle %s\n' \
        "$(query "m['host']")" "$SANDBOX/arch" "$(query "m['host']")" >>"$SANDBOX/etc/exports"
      cp "$SANDBOX/etc/exports" "$SANDBOX/.kernel-exports"
    fi
  }
  each_fault nfs_world "$(rebase "$(script_of nfs-exports)" ARCHIVE_ROOT="$SANDBOX/arch" \
    EXPORTS_FILE="$EXPORTS_FILE" PORTS_FILE="$SANDBOX/etc/nfs.conf.d/pitr-bundle.conf")"
}

@test "faults: the monitoring installer, failing at each change, stops and then completes on a re-run" {
  fake_ownership
  stub getent 'echo "$2:x:2000:"'
  stub visudo 'exit 0'
  fault_point install
  monitor_world() { :; }
  each_fault monitor_world "$(rebase_installer "$BUNDLE/$(query "[f['path'] for f in m['files'] if f['role'] == 'monitor' and f['order'] is not None][0]")" \
    CHECK="$SANDBOX/plugins/check_pitr" SUDOERS_FILE="$SANDBOX/sudoers.d/pitr-check" \
    "?SCRUB_CRON=$SANDBOX/cron.d/pitr-bundle-scrub")"
}

@test "faults: the status installer, failing at each change, stops and then completes on a re-run" {
  fake_ownership
  fault_point install
  status_world() { :; }
  each_fault status_world "$(rebase_installer "$BUNDLE/$(query "[f['path'] for f in m['files'] if f['role'] == 'status' and f['order'] is not None][0]")" \
    STATUS="$SANDBOX/sbin/pitr-status" "?STATUS_CRON=$SANDBOX/cron.d/pitr-bundle-status" "?PROM_DIR=$SANDBOX/prom")"
}

@test "faults: the VIP script, failing at each change, stops and then completes on a re-run" {
  [[ -n $(script_of vip) ]] || skip "no managed virtual IP in this bundle's host spec"
  fake_ownership
  fake_ip
  fake_systemctl
  export FAKE_UNIT_DIR=$SANDBOX/etc/systemd/system FAKE_IP_LINKS="lo $(query "facts['vip']['interface']")"
  # changes: ip address/route replace/del (queries start with -o), install, systemctl
  # daemon-reload/enable/start (queries are is-enabled/is-active)
  fault_point ip '[!-]*'
  fault_point install
  fault_point systemctl '[!i]*'
  vip_world() {
    # a route from the VIP to an address the specs no longer name: one more change to fail at
    mkdir -p "$SANDBOX/.net"
    : >"$SANDBOX/.net/addresses"
    echo "10.99.0.7 via 192.168.1.1 dev eth0 src $(query "facts['vip']['address']")" >"$SANDBOX/.net/routes"
  }
  each_fault vip_world "$(rebase "$(script_of vip)" UNIT_FILE="$FAKE_UNIT_DIR/$(query "facts['vip']['unit']")")"
}

@test "faults: the VIP script's --remove, failing at each change, stops and then completes on a re-run" {
  [[ -n $(script_of vip) ]] || skip "no managed virtual IP in this bundle's host spec"
  fake_ownership
  fake_ip
  fake_systemctl
  export FAKE_UNIT_DIR=$SANDBOX/etc/systemd/system FAKE_IP_LINKS="lo $(query "facts['vip']['interface']")"
  local script
  script=$(rebase "$(script_of vip)" UNIT_FILE="$FAKE_UNIT_DIR/$(query "facts['vip']['unit']")")
  fault_point ip '[!-]*'
  fault_point install
  fault_point rm
  fault_point systemctl '[!i]*'
  applied_world() {
    "$script" >/dev/null 2>&1
    # a stopped unit: --remove has routes and the address to take down itself
    /bin/rm -f "$SANDBOX/.systemd/"*.active
  }
  each_fault applied_world "$script" --remove --yes
}

@test "faults: the retire script, failing at each change, stops and then completes on a re-run" {
  load retire_world
  setup_retired
  fault_point runuser '*stop*'
  fault_point rm "*$SANDBOX/*"
  fault_point install
  retired_world() {
    a_retired_world
    "$STUB_BIN/zfs" create -p -o mountpoint=/x "$DATASET/child"
  }
  each_fault retired_world "$(retire_script)" --destroy-data --yes
}

@test "faults: the retire script with the archive a dataset, failing at each change, stops and then completes on a re-run" {
  load retire_world
  setup_retired
  fault_point runuser '*stop*'
  fault_point rm "*$SANDBOX/*"
  fault_point rmdir "*$SANDBOX/*"
  fault_point install
  retired_world() {
    a_retired_world dataset
  }
  each_fault retired_world "$(retire_script)" --destroy-data --yes
}

@test "faults: the primary-side removal, failing at each change, stops and then completes on a re-run" {
  load retire_world
  setup_retired
  fake_systemctl
  rm "$STUB_BIN/realpath" # this file's setup stubs it for the pool script
  fake_primary_server # its psql stub, which the gate below wraps
  # ending the walsender, the reload and the drop of the slot (one gate per command)
  fault_point psql '*select pg_*'
  fault_point rm "*$SANDBOX/*"
  fault_point install
  fault_point cp
  fault_point systemctl 'disable*'
  fault_point "$SANDBOX/pgbin/pg_ctl" 'restart*'
  each_fault a_primary_world "$(remove_script)" --restart --yes
}

@test "faults: the replica send command's confirm, failing at each change, stops and then completes on a re-run" {
  load replica_world
  replica_scripts
  need SEND "replica send command (role replica-send)"
  send_world
  # the hold of the newest, then the release of the previous one
  confirmed_world() {
    source_world "$SEND"
    "$CMD" --request "confirm $CLUSTER_DS ${PREFIX}20261207T100000Z" 2>/dev/null
  }
  each_fault confirmed_world "$CMD" --request "confirm $CLUSTER_DS ${PREFIX}20261207T110000Z"
}

@test "faults: the replica sender setup, failing at each change, stops and then completes on a re-run" {
  load replica_world
  replica_scripts
  sender_world
  fault_point useradd
  fault_point usermod
  fault_point install
  each_fault sender_files "$SCRIPT" --public-key "$PUB"
}

@test "faults: the replica key script, failing at each change, stops and then completes on a re-run" {
  load replica_world
  replica_scripts
  key_world
  fault_point ssh-keygen
  fault_point install
  fault_point mv "*known_hosts*"
  each_fault key_files "$SCRIPT" --source-host-key "$HOSTKEY"
}

@test "faults: the replication installer, failing at each change, stops and then completes on a re-run" {
  load replica_world
  need_role replicate-install
  fake_ownership
  fault_point install
  no_world() { :; }
  each_fault no_world "$(rebase_installer "$(script_of replicate-install)" REPLICATE_SCRIPT="$SANDBOX/sbin/pitr-replicate" \
    CRON_FILE="$SANDBOX/cron.d/pitr-replicate")"
}

@test "faults: the replication script, failing at each change, stops and then completes on a re-run" {
  load replica_world
  replica_scripts
  # small keep counts: the run prunes too
  replica_world KEEP_HOURLY=1 KEEP_DAILY=0 KEEP_WEEKLY=0 KEEP_MONTHLY=0 KEEP_YEARLY=0
  local cluster
  cluster=$(awk -F '\t' -v s="$CLUSTER_DS" '$3 == s { print $1 }' <<<"$COPIES")
  # pulled once; since then a snapshot of the cluster an hour later (the next run: a new
  # archive snapshot, two incremental receives, holds moved, the older ones pruned)
  pulled_world() {
    replica_zfs
    "$SCRIPT" --cluster "$cluster" >/dev/null 2>&1
    set_clock "2026-12-07 13:00:30"
    "$STUB_BIN/zfs" snapshot "$CLUSTER_DS@${PREFIX}20261207T130000Z"
  }
  each_fault pulled_world "$SCRIPT" --cluster "$cluster"
}
