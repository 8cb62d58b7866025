#!/usr/bin/env bats
# Faults of the per-cluster scripts (the host's are in faults.bats): for each, a change that
# fails at step k (every k: zpool and zfs changes, and the commands marked with fault_point)
# stops the script with the step named and a non-zero exit; running it again once the fault is gone completes the job, in the
# same end state as an uninterrupted run (see each_fault in test_helper.bash).

# every fault position of every script: minutes per cluster, so only with `check --deep`
# bats file_tags=deep

# What this suite reads of its cluster, and all it sees of the bundle (generator/views.py):
# view roles: user build primary check-primary basebackup standby snapshot wal-retention snapshot-cron restore drill drill-cron
# view facts: name user dataset postgres_major archive primary snapshots paths replication_tls
# view host: pool.name

load test_helper

setup() {
  setup_stubs
  POOL=$(query "facts['pool']['name']")
}

@test "faults: the user script, failing at each change, stops and then completes on a re-run" {
  fake_ownership
  fake_users
  fault_point groupadd
  fault_point useradd
  fault_point install
  user_world() {
    mkdir -p "$SANDBOX/mnt"
    : >"$SANDBOX/.passwd"
    : >"$SANDBOX/.group"
  }
  each_fault user_world "$(rebase "$(cluster_script user)" OS_HOME="$SANDBOX/home" \
    PGDATA="$SANDBOX/mnt/pg_root" SOFT_BAK="$SANDBOX/pg_home/soft_bak" \
    PG_HOME_DIR="$SANDBOX/pg_home" LOG_DIR="$SANDBOX/pg_log" MOUNTPOINT="$SANDBOX/mnt")"
}

@test "faults: the standby script, failing at each change, stops and then completes on a re-run" {
  fake_ownership
  fake_users
  USER_NAME=$(cluster_fact "['user']")
  PGHOME=$BATS_TEST_TMPDIR/pghome
  fake_pghome "$PGHOME"
  fault_point install
  fault_point mv
  fault_point "$PGHOME/bin/pg_ctl" '*start*'
  export PITR_REPLICATION_PASSWORD=secret
  standby_world() {
    echo "$USER_NAME:x:2000:2000::$SANDBOX/home:/bin/bash" >"$SANDBOX/.passwd"
    mkdir -p "$SANDBOX/pg_root" "$SANDBOX/home" "$SANDBOX/log"
    cluster_fact "['postgres_major']" >"$SANDBOX/pg_root/PG_VERSION"
    printf 'port = 5432\n' >"$SANDBOX/pg_root/postgresql.conf"
    echo "local all all trust" >"$SANDBOX/pg_root/pg_hba.conf"
    # both kinds of standby file, as a base backup of a standby may carry: one must move
    touch "$SANDBOX/pg_root/standby.signal" "$SANDBOX/pg_root/recovery.conf"
    # a day folder the NFS path made (archive.method standby gives it to the user)
    mkdir -p "$SANDBOX/pg_arch/arch/2026-01-01"
  }
  tls_ca_file "$BATS_TEST_TMPDIR/tls"  # outside the sandbox each fault's world starts anew
  # archive.method standby: the archive folders and the helper too
  fault_point chown
  standby_script=$(cluster_script standby)
  each_fault standby_world "$(rebase "$standby_script" OS_HOME="$SANDBOX/home" \
    PGDATA="$SANDBOX/pg_root" PGHOME="$PGHOME" LOG_DIR="$SANDBOX/log" "${TLS_REBASE[@]}" \
    "?INSTALLER_PATH=$standby_script" "?ARCHIVE=$SANDBOX/pg_arch/arch" "?HELPER=$SANDBOX/sbin/helper")"
}

# the snapshot script's world: the cluster's dataset with 4 days of snapshots, every 8 hours, so
# that a run prunes several (the clock is stubbed: every run happens in the same second)
snapshot_world() {
  local dataset prefix hour
  dataset=$(cluster_fact "['dataset']")
  prefix=$(cluster_fact "['snapshots']['prefix']")
  make_pool
  "$STUB_BIN/zfs" create -p -o mountpoint=/x "$dataset"
  for ((hour = 24 * 4; hour > 0; hour -= 8)); do
    printf '#!/bin/sh\nexec /bin/date -d "2026-01-08 08:01:00Z -%s hours" "$@"\n' "$hour" >"$STUB_BIN/date"
    chmod +x "$STUB_BIN/date"
    "$STUB_BIN/zfs" snapshot "$dataset@$prefix$("$STUB_BIN/date" -u +%Y%m%dT%H%M%SZ)"
  done
  printf '#!/bin/sh\nexec /bin/date -d "2026-01-08 08:01:00Z" "$@"\n' >"$STUB_BIN/date"
  chmod +x "$STUB_BIN/date"
  # a standby running in recovery: the script snapshots nothing else
  fake_standby "$BATS_TEST_TMPDIR/pghome" "$SANDBOX/pgdata" "$(cluster_fact "['postgres_major']")"
}

# the snapshot script on snapshot_world's standby
snapshot_script() {
  rebase "$(cluster_script snapshot)" LOCK_FILE="$BATS_TEST_TMPDIR/snapshot.lock" \
    PGHOME="$BATS_TEST_TMPDIR/pghome" PGDATA="$SANDBOX/pgdata"
}

@test "faults: the snapshot script (ZFS without batched destroy), failing at each change, then completes" {
  stub flock
  stub logger
  each_fault snapshot_world "$(snapshot_script)"
}

@test "faults: the snapshot script (OpenZFS, one batched destroy), failing at each change, then completes" {
  stub flock
  stub logger
  export FAKE_OPENZFS=1
  each_fault snapshot_world "$(snapshot_script)"
}

@test "faults: the WAL retention script, failing at each change, stops and then completes on a re-run" {
  stub flock
  stub logger
  fault_point rm
  fault_point rmdir
  retention_world() {
    local dataset prefix day n=0
    dataset=$(cluster_fact "['dataset']")
    prefix=$(cluster_fact "['snapshots']['prefix']")
    make_pool
    "$STUB_BIN/zfs" create -p -o mountpoint="$SANDBOX/live" -o pitr-bundle:system-id=7399999999999999999 "$dataset"
    # an earlier system's WAL, set apart, of which no snapshot is left: it goes
    mkdir -p "$SANDBOX/generations/7301234567890123456/2025-12-01"
    printf 'wal' >"$SANDBOX/generations/7301234567890123456/2025-12-01/000000010000000000000009"
    # 12 days of WAL, 30 segments a day, a snapshot every 4 days: several rm batches, several
    # day folders to remove, the mark to set
    for ((day = 0; day < 12; day++)); do
      mkdir -p "$SANDBOX/arch/$(/bin/date -u -d "2026-01-01 + $day days" +%F)"
      for ((i = 0; i < 30; i++)); do
        n=$((n + 1))
        printf 'wal' >"$SANDBOX/arch/$(/bin/date -u -d "2026-01-01 + $day days" +%F)/$(printf '00000001%08X%08X' $((n / 256)) $((n % 256)))"
      done
      if ((day % 4 == 0)); then
        printf '#!/bin/sh\nexec /bin/date -d "2026-01-01 08:01:00Z + %s days" "$@"\n' "$day" >"$STUB_BIN/date"
        chmod +x "$STUB_BIN/date"
        "$STUB_BIN/zfs" snapshot -o "pitr-bundle:redo-wal=$(printf '00000001%08X%08X' $((n / 256)) $((n % 256)))" \
          -o pitr-bundle:system-id=7399999999999999999 "$dataset@$prefix$("$STUB_BIN/date" -u +%Y%m%dT%H%M%SZ)"
      fi
    done
    # whatever the window, its start falls between the 2nd and the 3rd snapshot
    printf '#!/bin/sh\nexec /bin/date -d "2026-01-06 08:01:00Z + %s days" "$@"\n' \
      "$(cluster_fact "['archive']['pitr_window_days']")" >"$STUB_BIN/date"
    chmod +x "$STUB_BIN/date"
  }
  each_fault retention_world "$(rebase "$(cluster_script wal-retention)" \
    LOCK_FILE="$BATS_TEST_TMPDIR/snapshot.lock" ARCHIVE="$SANDBOX/arch" RM_BATCH=50 \
    GENERATIONS="$SANDBOX/generations")"
}

@test "faults: the restore script, failing at each change, stops and then resumes on a re-run" {
  fake_ownership
  fake_users
  USER_NAME=$(cluster_fact "['user']")
  PGHOME=$BATS_TEST_TMPDIR/pghome
  fake_pghome "$PGHOME"
  # the restored server answers "not in recovery" once started
  STUB_TARGET=$PGHOME/bin stub psql 'echo f'
  fault_point install
  fault_point rm
  fault_point mv
  fault_point "$PGHOME/bin/pg_ctl" '*start*'
  restore_world() {
    local dataset prefix
    dataset=$(cluster_fact "['dataset']")
    prefix=$(cluster_fact "['snapshots']['prefix']")
    echo "$USER_NAME:x:2000:2000::$SANDBOX/home:/bin/bash" >"$SANDBOX/.passwd"
    make_pool
    "$STUB_BIN/zfs" create -p -o mountpoint="$SANDBOX/live" "$dataset"
    mkdir -p "$SANDBOX/live/pg_root"
    printf "# standby\ninclude 'pitr-bundle.conf'\n" >"$SANDBOX/live/pg_root/postgresql.conf"
    # what a standby of either kind holds: both go, the old recovery.conf is kept aside
    touch "$SANDBOX/live/pg_root/standby.signal" "$SANDBOX/live/pg_root/postmaster.pid"
    echo "standby_mode = 'on'" >"$SANDBOX/live/pg_root/recovery.conf"
    printf '#!/bin/sh\nexec /bin/date -d "2026-11-24 08:01:00Z" "$@"\n' >"$STUB_BIN/date"
    chmod +x "$STUB_BIN/date"
    "$STUB_BIN/zfs" snapshot "$dataset@${prefix}20261124T080100Z"
    rm -f "$STUB_BIN/date"
  }
  each_fault restore_world "$(rebase "$(cluster_script restore)" PGHOME="$PGHOME" \
    RESTORE_ROOT="$SANDBOX/restore" LOG_ROOT="$SANDBOX/log" OPEN_TIMEOUT=5)" \
    --target-time '2026-11-24 12:00:00+00' --name t1 --yes
}

@test "faults: the snapshot-cron installer, failing at each change, stops and then completes on a re-run" {
  fake_ownership
  fault_point install
  cron_world() { :; }
  CLUSTER=$(cluster_fact "['name']")
  each_fault cron_world "$(rebase_installer "$BUNDLE/$(query "[f['path'] for f in m['files'] if f['role'] == 'snapshot-cron' and f['cluster'] == '$CLUSTER' and f['path'].endswith('.sh')][0]")" \
    SNAPSHOT_SCRIPT="$SANDBOX/sbin/pitr-snapshot" RETENTION_SCRIPT="$SANDBOX/sbin/pitr-wal-retention" \
    CRON_FILE="$SANDBOX/cron.d/pitr")"
}

@test "faults: the base backup script, failing at each change, stops and then completes on a re-run" {
  fake_ownership
  fake_users
  USER_NAME=$(cluster_fact "['user']")
  PGHOME=$BATS_TEST_TMPDIR/pghome
  fake_pghome "$PGHOME" "$(cluster_fact "['postgres_major']")"
  stub rsync
  stub ssh
  fault_point install
  fault_point mv
  fault_point rm
  fault_point tar '-x*'
  fault_point touch
  fault_point "$PGHOME/bin/pg_basebackup"
  fault_point "$PGHOME/bin/psql"
  export PITR_REPLICATION_PASSWORD=secret
  # the base backup of a rebuilt primary: a new system identifier starts a new generation
  STUB_TARGET=$PGHOME/bin stub pg_controldata 'echo "Database system identifier:           7399999999999999999"'
  basebackup_world() {
    echo "$USER_NAME:x:2000:2000::$SANDBOX/home:/bin/bash" >"$SANDBOX/.passwd"
    mkdir -p "$SANDBOX/mnt/pg_root" "$SANDBOX/home"
    make_pool
    "$STUB_BIN/zfs" create -p -o mountpoint=/x -o pitr-bundle:system-id=7301234567890123456 \
      -o pitr-bundle:wal-kept-from=000000010000003000000010 "$(cluster_fact "['dataset']")"
    # the old system's WAL in two day folders: set apart into its generation
    wal_file "$SANDBOX/arch/2026-11-23/000000010000003000000010" 7301234567890123456 24
    wal_file "$SANDBOX/arch/2026-11-24/000000010000003000000011" 7301234567890123456 24
  }
  fault_point mkdir
  tls_ca_file "$BATS_TEST_TMPDIR/tls"  # outside the sandbox each fault's world starts anew
  each_fault basebackup_world "$(rebase "$(cluster_script basebackup)" OS_HOME="$SANDBOX/home" \
    PGDATA="$SANDBOX/mnt/pg_root" PGHOME="$PGHOME" ?STAGING="$SANDBOX/mnt/.basebackup" \
    ARCHIVE="$SANDBOX/arch" GENERATIONS="$SANDBOX/generations" "${TLS_REBASE[@]}")" --yes
}

@test "faults: the primary-side script, failing at each change, stops and then completes on a re-run" {
  fake_ownership
  fake_users
  PG_USER=$(cluster_fact "['primary']['os_user']")
  stub systemctl '[[ $1 == is-enabled ]] && exit 1; exit 0'
  stub mount
  stub visudo 'exit 0'
  primary_world() {
    echo "$PG_USER:x:26:26::/var/lib/pgsql:/bin/bash" >"$SANDBOX/.passwd"
    fake_primary_server
  }
  fake_primary_server # its psql stub, which the gate below wraps
  fault_point install
  fault_point systemctl 'enable*'
  fault_point mount
  fault_point cp
  fault_point psql '*pg_create_physical_replication_slot*'
  # the fake server's own stubs live in the sandbox: the pg_ctl restart is a change too
  each_fault primary_world "$(primary_script)" --restart
}

@test "faults: the primary-side script on the HA partner (in recovery, the slot made unreserved), failing at each change, completes on a re-run" {
  [[ -n $(cluster_fact "['primary']['nodes'][1:]") ]] || skip "no HA partner in this cluster's spec"
  fake_ownership
  fake_users
  PG_USER=$(cluster_fact "['primary']['os_user']")
  stub systemctl '[[ $1 == is-enabled ]] && exit 1; exit 0'
  stub mount
  stub visudo 'exit 0'
  partner_world() {
    echo "$PG_USER:x:26:26::/var/lib/pgsql:/bin/bash" >"$SANDBOX/.passwd"
    fake_primary_server
    pg_fact recovery yes
    pg_setting wal_level replica postmaster "configuration file" "$PG_ETC/postgresql.conf"
    pg_setting max_replication_slots 10 postmaster "configuration file" "$PG_ETC/postgresql.conf"
  }
  fake_primary_server # its psql stub, which the gate below wraps
  fault_point install
  fault_point systemctl 'enable*'
  fault_point mount
  fault_point cp
  fault_point psql '*pg_create_physical_replication_slot*'
  each_fault partner_world "$(primary_script)"
}

@test "faults: the primary-side script moving a node off the NFS path, failing at each change, completes on a re-run" {
  [[ $(cluster_fact "['archive']['method']") == standby ]] || skip "this cluster's primary archives over NFS"
  fake_ownership
  fake_users
  PG_USER=$(cluster_fact "['primary']['os_user']")
  stub systemctl '[[ $1 == is-enabled ]] && exit 0; exit 0'
  stub mountpoint 'exit 0'
  stub umount
  leaving_world() {
    echo "$PG_USER:x:26:26::/var/lib/pgsql:/bin/bash" >"$SANDBOX/.passwd"
    fake_primary_server
    nfs_era "$(cluster_fact "['name']")"
    pg_fact slot physical
    pg_fact slot_active active
  }
  fake_primary_server # its psql stub, which the gate below wraps
  fault_point install
  fault_point cp
  fault_point rm
  fault_point umount
  fault_point systemctl 'disable*'
  each_fault leaving_world "$(primary_script)" --restart
}

@test "faults: the build script, failing at each change, stops and then completes on a re-run" {
  fake_ownership
  fake_users
  USER_NAME=$(cluster_fact "['user']")
  script=$(cluster_script build)
  [[ -n $script ]] || skip "this cluster uses installed binaries (35-check-binaries.sh changes nothing)"
  source_tarball=$BATS_TEST_TMPDIR/postgresql-fake.tar.gz
  fake_source_tarball "$source_tarball" "$SANDBOX/pgsql" "$script"
  BUILD_SCRIPT=$(rebase "$script" SOFT_BAK="$SANDBOX/soft_bak" PREFIX="$SANDBOX/pgsql" \
    PGHOME="$SANDBOX/pghome" OS_HOME="$SANDBOX/home" SOURCE_FILE=postgresql-fake.tar.gz \
    SOURCE_SHA256="$(sha256sum "$source_tarball" | cut -d' ' -f1)")
  fault_point install
  fault_point rm
  fault_point ln
  fault_point tar '-x*'
  # every configure and make runs as `env -i ...` (build_step)
  fault_point env '*env -i *'
  build_world() {
    echo "$USER_NAME:x:2000:2000::$SANDBOX/home:/bin/bash" >"$SANDBOX/.passwd"
    mkdir -p "$SANDBOX/soft_bak" "$SANDBOX/home"
    cp "$source_tarball" "$SANDBOX/soft_bak/"
  }
  each_fault build_world "$BUILD_SCRIPT"
  # and the finished build is the fake one, configured with the spec's line
  [[ $("$SANDBOX/pghome/bin/pg_config" --configure) == *"--prefix="* ]]
}

@test "faults: the restore drill, failing at each change, records the failure, leaves no clone, and a re-run succeeds" {
  setup_cluster_user
  local dataset prefix drill clone changes k
  dataset=$(cluster_fact "['dataset']")
  prefix=$(cluster_fact "['snapshots']['prefix']")
  drill=$(cluster_script drill)
  [[ -n $drill ]] || skip "drills are off"
  clone=$(sed -n "s/^readonly CLONE=//p" "$drill" | tr -d "'")
  fake_pghome "$BATS_TEST_TMPDIR/pghome"
  # data checksums on: the drill stops its clone for pg_checksums (one more change)
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  STUB_TARGET=$BATS_TEST_TMPDIR/pghome/bin stub psql '[[ ${*: -1} != "show data_checksums" ]] || echo on'
  STUB_TARGET=$BATS_TEST_TMPDIR/pghome/bin stub pg_checksums 'echo "Blocks scanned: 3"'
  fault_point "$BATS_TEST_TMPDIR/pghome/bin/pg_ctl" '*stop*'
  stub logger
  # restore.sh as a stub making the clone (its own faults: "the restore script" above)
  cat >"$BATS_TEST_TMPDIR/restore.sh" <<STUB
#!/usr/bin/env bash
set -e
case " \$* " in
  *" --cleanup "*) zfs destroy $clone; exit 0 ;;
esac
zfs create -p -o origin=$dataset@${prefix}20261124T080100Z $clone
mkdir -p "$SANDBOX/clone-logs"
echo 'LOG:  recovery stopping before commit of transaction 9' >"$SANDBOX/clone-logs/postgresql.log"
STUB
  chmod +x "$BATS_TEST_TMPDIR/restore.sh"
  fault_point "$BATS_TEST_TMPDIR/restore.sh"
  fault_point mv
  local script
  script=$(rebase "$drill" RESTORE_SCRIPT="$BATS_TEST_TMPDIR/restore.sh" CLONE_PGDATA="$SANDBOX/clone/pg_root" \
    CLONE_LOGS="$SANDBOX/clone-logs" STATE_DIR="$SANDBOX/state" LOCK_FILE="$BATS_TEST_TMPDIR/drill.lock" \
    PGHOME="$BATS_TEST_TMPDIR/pghome" DATA_CHECKSUMS=1 PG_CHECKSUMS=1)
  drill_world() {
    /bin/rm -rf "${FAKE_ZFS_STATE:?}" "${SANDBOX:?}/state" "$SANDBOX/clone-logs"
    mkdir -p "$FAKE_ZFS_STATE"
    FAKE_CMD=zpool bash "$SUITES_DIR/fake_zfs.bash" create "$POOL" mirror /dev/a /dev/b
    "$STUB_BIN/zfs" create -p -o mountpoint="$SANDBOX/live" "$dataset"
    "$STUB_BIN/zfs" snapshot "$dataset@${prefix}20261124T080100Z"
    # a clone an earlier drill left: one more change to fail at
    "$STUB_BIN/zfs" create -p -o origin="$dataset@${prefix}20261124T080100Z" "$clone"
  }
  drill_world
  FAKE_FAIL_AT=999999 run -0 "$script"
  changes=$(cat "$FAKE_ZFS_STATE/.changes")
  ((changes >= 4)) || { echo "only $changes changes"; return 1; }
  for ((k = 1; k <= changes; k++)); do
    drill_world
    FAKE_FAIL_AT=$k run "$script"
    [ "$status" -ne 0 ] || { echo "fault at change $k: exit 0"; return 1; }
    [[ $output == *"ERROR"* ]] || { echo "fault at change $k: no error: $output"; return 1; }
    if [[ -f $SANDBOX/state/drill-$(cluster_fact "['name']").state ]]; then
      grep -qx 'result=failed' "$SANDBOX/state/drill-$(cluster_fact "['name']").state" ||
        { echo "fault at change $k: recorded as ok"; return 1; }
    fi
    run "$script"
    [ "$status" -eq 0 ] || { echo "fault at change $k: the re-run failed: $output"; return 1; }
    grep -qx 'result=ok' "$SANDBOX/state/drill-$(cluster_fact "['name']").state"
    grep -qx 'checksums=ok: pg_checksums --check, 3 blocks' "$SANDBOX/state/drill-$(cluster_fact "['name']").state"
    ! "$STUB_BIN/zfs" list -H -o name "$clone" || { echo "fault at change $k: clone left"; return 1; }
  done
  echo "# $changes fault positions checked" >&3
}

@test "faults: the drill installer, failing at each change, stops and then completes on a re-run" {
  fake_ownership
  fault_point install
  cron_world() { :; }
  [[ -n $(cluster_script drill-cron) ]] || skip "drills are off"
  each_fault cron_world "$(rebase_installer "$(cluster_script drill-cron)" DRILL_SCRIPT="$SANDBOX/sbin/pitr-drill" \
    RESTORE_SCRIPT="$SANDBOX/sbin/pitr-restore" CRON_FILE="$SANDBOX/cron.d/drill")"
}

@test "faults: the primary check, with each query or reading failing, still prints one status line, never OK" {
  local script calls k
  script=$(cluster_script check-primary)
  PGDATA_DIR=$BATS_TEST_TMPDIR/pgdata
  mkdir -p "$PGDATA_DIR/pg_wal/archive_status" "$PGDATA_DIR/pg_xlog/archive_status"
  # a healthy primary: archiving on, no failure, the slot keeping little
  # shellcheck disable=SC2016 # the quoted text is the stub's own code, expanded when it runs
  stub psql 'case "$*" in
  *"show archive_mode"*) echo on ;;
  *pg_stat_archiver*) echo "0|1700000000|0||1700000100|f" ;;
  *pg_replication_slots*) echo "true|1024|reserved|1073741824" ;;
  *pg_stat_ssl*) echo "1|1|0|TLSv1.3" ;;
esac'
  for command in psql du find; do
    fault_point "$command"
  done
  run -0 "$script" --pgdata "$PGDATA_DIR"
  [[ $output == "PITR-PRIMARY OK - "* ]]
  FAKE_FAIL_AT=999999 run -0 "$script" --pgdata "$PGDATA_DIR"
  calls=$(cat "$FAKE_ZFS_STATE/.changes")
  for ((k = 1; k <= calls; k++)); do
    rm -f "$FAKE_ZFS_STATE/.changes"
    FAKE_FAIL_AT=$k run --separate-stderr "$script" --pgdata "$PGDATA_DIR"
    [ "$status" -ne 0 ] || { echo "failure at call $k: exit 0: $output"; return 1; }
    [ "${#lines[@]}" -eq 1 ] && [[ $output == "PITR-PRIMARY "* ]] || { echo "failure at call $k: $output"; return 1; }
  done
  echo "# $calls failing calls checked" >&3
}
