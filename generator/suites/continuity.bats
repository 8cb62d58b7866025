#!/usr/bin/env bats
# The archive continuity check (templates/lib/wal-continuity.sh.j2), as the host monitor
# carries it, on fake archives of real WAL file names: gaps, timeline switches (.history,
# .partial), segment sizes and the last segment of a log file that WAL before 9.3 never uses.
# Through the monitor and the drill: monitor.bats, cluster-drill.bats; against a real archive
# of a real PostgreSQL: tests/test_continuity_zfs_pg.py.

load test_helper

setup() {
  setup_stubs
  CHECK=$BUNDLE/$(query "[f['path'] for f in m['files'] if f['role'] == 'monitor' and f['order'] is None][0]")
  # the functions between the library's markers, as the monitor runs them
  # shellcheck disable=SC1090 # a generated file, found through the manifest
  source <(sed -n '/^# >>> wal-continuity/,/^# <<< wal-continuity/p' "$CHECK")
  declare -F wal_continuity_scan >/dev/null
  ARCH=$SANDBOX/arch
  mkdir -p "$ARCH"
}

# segments DAY SIZE NAME...: whole segments (sparse files) in the day folder DAY
segments() {
  local day=$1 size=$2 name
  shift 2
  mkdir -p "$ARCH/$day"
  for name in "$@"; do truncate -s "$size" "$ARCH/$day/$name"; done
}

# run of 16 MB segments of timeline 1, log 0A, from FIRST to LAST (two hex digits)
run_of() {
  local i
  for ((i = 16#$1; i <= 16#$2; i++)); do
    segments 2026-12-01 16M "$(printf '000000010000000A%08X' "$i")"
  done
}

scan() {
  wal_continuity_scan "$ARCH" "$@"
}

@test "continuity: a continuous archive is ok, from the start given or its oldest segment" {
  run_of 40 44
  [ "$(scan '' '' 0)" = $'ok\t000000010000000A00000040\t000000010000000A00000044\t5\t16777216' ]
  [ "$(scan 000000010000000A00000042 16777216 0)" = $'ok\t000000010000000A00000042\t000000010000000A00000044\t3\t16777216' ]
}

@test "continuity: a segment missing in the middle is named, with the last one before and the next one after" {
  run_of 40 44
  rm "$ARCH/2026-12-01/000000010000000A00000042"
  touch -d '2026-12-01 10:11:00 UTC' "$ARCH/2026-12-01/000000010000000A00000041"
  IFS=$'\t' read -r kind missing why before when after count last size <<<"$(scan '' '' 0)"
  [ "$kind $missing $why $before $after $count $last $size" = "gap 000000010000000A00000042 missing 000000010000000A00000041 000000010000000A00000043 1 000000010000000A00000044 16777216" ]
  [ "${when%.*}" = "$(date -u -d '2026-12-01 10:11:00 UTC' +%s)" ]
}

@test "continuity: every missing segment is counted, the first one named" {
  run_of 40 4A
  rm "$ARCH/2026-12-01/000000010000000A0000004"[2357]
  IFS=$'\t' read -r kind missing _ _ _ after count _ <<<"$(scan '' '' 0)"
  [ "$kind $missing $after $count" = "gap 000000010000000A00000042 000000010000000A00000044 4" ]
}

@test "continuity: a gap right at the start: the first segment a restore needs is missing" {
  run_of 40 44
  IFS=$'\t' read -r kind missing _ before when after count _ <<<"$(scan 000000010000000A0000003E '' 0)"
  [ "$kind $missing $before $when $after $count" = "gap 000000010000000A0000003E - - 000000010000000A00000040 2" ]
}

@test "continuity: older segments than the start do not count, nor hidden temporary copies" {
  run_of 40 44
  rm "$ARCH/2026-12-01/000000010000000A00000041"
  touch "$ARCH/2026-12-01/.000000010000000A00000045.123.tmp"
  [ "$(scan 000000010000000A00000042 '' 0 | cut -f1-3)" = $'ok\t000000010000000A00000042\t000000010000000A00000044' ]
}

@test "continuity: an empty archive, and one whose segments are all older than the start, hold nothing to check" {
  [ "$(scan '' '' 0)" = $'empty\t-' ]
  run_of 40 41
  [ "$(scan 000000010000000A00000050 '' 0)" = $'empty\t16777216' ]
  [ "$(wal_continuity_scan "$SANDBOX/none" '' '' 0)" = "unknown	the archive folder $SANDBOX/none is missing" ]
}

@test "continuity: a segment of the wrong size is a gap (damaged), and a size that is no segment size is unknown" {
  run_of 40 44
  truncate -s 1000 "$ARCH/2026-12-01/000000010000000A00000043"
  [ "$(scan '' '' 0 | cut -f1-3)" = $'gap\t000000010000000A00000043\tdamaged (1000 bytes, not 16777216)' ]
  # pg_controldata's size wins over the files': every file has another size
  rm -r "${ARCH:?}"/*
  segments 2026-12-01 16M 000000010000000A0000001{0,1}
  [ "$(scan '' 67108864 0 | cut -f1-3)" = $'gap\t000000010000000A00000010\tdamaged (16777216 bytes, not 67108864)' ]
  [ "$(scan '' 1000 0)" = $'unknown\tsegment size 1000 is not a WAL segment size' ]
}

@test "continuity: before 9.3 the last segment of each log file is never used (FF at 16 MB), from 9.3 it is" {
  segments 2026-12-01 16M 000000010000000A000000FD 000000010000000A000000FE
  segments 2026-12-02 16M 000000010000000B00000000 000000010000000B00000001
  [ "$(scan '' '' 1)" = $'ok\t000000010000000A000000FD\t000000010000000B00000001\t4\t16777216' ]
  [ "$(scan '' '' 0 | cut -f1-2)" = $'gap\t000000010000000A000000FF' ]
  segments 2026-12-01 16M 000000010000000A000000FF
  [ "$(scan '' '' 0 | cut -f1,4)" = $'ok\t5' ]
}

@test "continuity: 64 MB segments before 9.3 (the example's 9.0): 3F is the skipped one, 3E is required" {
  segments 2026-12-01 64M 000000010000000A0000003D 000000010000000A0000003E
  segments 2026-12-02 64M 000000010000000B00000000
  [ "$(scan '' '' 1)" = $'ok\t000000010000000A0000003D\t000000010000000B00000000\t3\t67108864' ]
  [ "$(scan '' 67108864 1 | cut -f1)" = ok ]
  [ "$(scan '' '' 0 | cut -f1-2)" = $'gap\t000000010000000A0000003F' ]
  rm "$ARCH/2026-12-01/000000010000000A0000003E"
  [ "$(scan '' '' 1 | cut -f1-2,7)" = $'gap\t000000010000000A0000003E\t1' ]
}

@test "continuity: segment numbers past 2^32 (a high log file) keep their names" {
  segments 2026-12-01 16M 00000001FFFFFFF0000000FE 00000001FFFFFFF0000000FF 00000001FFFFFFF100000000
  [ "$(scan '' '' 0)" = $'ok\t00000001FFFFFFF0000000FE\t00000001FFFFFFF100000000\t3\t16777216' ]
  rm "$ARCH/2026-12-01/00000001FFFFFFF0000000FF"
  [ "$(scan '' '' 0 | cut -f2,4,6)" = $'00000001FFFFFFF0000000FF\t00000001FFFFFFF0000000FE\t00000001FFFFFFF100000000' ]
}

# a_switch: timeline 1 up to segment 5 (its switch segment only as .partial, 9.5+), timeline 2
# from segment 5 on (the switch at 0/5000A28), with its history file
a_switch() {
  segments 2026-12-01 16M 00000001000000000000000{1,2,3,4}
  segments 2026-12-01 8M 000000010000000000000005.partial
  segments 2026-12-02 16M 00000002000000000000000{5,6,7}
  printf '1\t0/5000A28\tno recovery target specified\n' >"$ARCH/2026-12-02/00000002.history"
}

@test "continuity: a timeline switch is followed through its .history file: no gap" {
  a_switch
  [ "$(scan 000000010000000000000002 '' 0)" = $'ok\t000000010000000000000002\t000000020000000000000007\t6\t16777216' ]
  # before 9.5 the old timeline's switch segment may be archived whole: never required, never a gap
  segments 2026-12-01 16M 000000010000000000000005
  [ "$(scan 000000010000000000000002 '' 0 | cut -f1,4)" = $'ok\t6' ]
}

@test "continuity: after a switch the segments are expected on the new timeline, before it on the old one" {
  a_switch
  rm "$ARCH/2026-12-02/000000020000000000000005"
  # the old timeline's whole copy of the switch segment does not stand in for the new one's
  segments 2026-12-01 16M 000000010000000000000005
  [ "$(scan 000000010000000000000002 '' 0 | cut -f1-2,4,6)" = $'gap\t000000020000000000000005\t000000010000000000000004\t000000020000000000000006' ]
  segments 2026-12-02 16M 000000020000000000000005
  rm "$ARCH/2026-12-01/000000010000000000000004"
  [ "$(scan 000000010000000000000002 '' 0 | cut -f1-2)" = $'gap\t000000010000000000000004' ]
}

@test "continuity: a timeline the newest one does not descend from is ignored; chains of switches are followed" {
  a_switch
  # timeline 3 forked from 2 at 0/7000000; 2 carried on past it (an old primary): ignored
  segments 2026-12-02 16M 000000020000000000000008
  segments 2026-12-03 16M 00000003000000000000000{7,8,9}
  printf '1\t0/5000A28\tno recovery target specified\n2\t0/7000000\tat restore point "x"\n' \
    >"$ARCH/2026-12-03/00000003.history"
  [ "$(scan 000000010000000000000001 '' 0)" = $'ok\t000000010000000000000001\t000000030000000000000009\t9\t16777216' ]
  rm "$ARCH/2026-12-02/000000020000000000000006"
  [ "$(scan 000000010000000000000001 '' 0 | cut -f1-2)" = $'gap\t000000020000000000000006' ]
}

@test "continuity: a history file before 9.3 names the switch by its WAL file, not an LSN" {
  # 9.0 to 9.2: "<parent TLI><TAB><WAL file the old timeline ended in><TAB><reason>"
  segments 2026-12-01 64M 000000010000000A0000003{C,D,E}
  segments 2026-12-02 64M 000000020000000A0000003E 000000020000000B0000000{0,1}
  printf '1\t000000010000000A0000003E\tno recovery target specified\n' >"$ARCH/2026-12-02/00000002.history"
  [ "$(scan '' '' 1)" = $'ok\t000000010000000A0000003C\t000000020000000B00000001\t5\t67108864' ]
  rm "$ARCH/2026-12-02/000000020000000A0000003E"
  [ "$(scan '' '' 1 | cut -f1-2,4)" = $'gap\t000000020000000A0000003E\t000000010000000A0000003D' ]
}

@test "continuity: a new timeline with no segment yet: the old one is complete up to the switch" {
  segments 2026-12-01 16M 00000001000000000000000{1,2,3}
  printf '1\t0/4000100\tno recovery target specified\n' >"$ARCH/2026-12-01/00000002.history"
  [ "$(scan '' '' 0 | cut -f1-4)" = $'ok\t000000010000000000000001\t000000010000000000000003\t3' ]
}

@test "continuity: the start is the oldest snapshot's REDO WAL file, or the first kept one when the retention went past it" {
  local ds=zp1/c1
  FAKE_CMD=zpool bash "$SUITES_DIR/fake_zfs.bash" create zp1 mirror /dev/a /dev/b
  zfs create -p "$ds"
  [ -z "$(wal_continuity_start "$ds" pitr- pitr-bundle:redo-wal pitr-bundle:wal-kept-from)" ]
  zfs snapshot -o pitr-bundle:redo-wal=000000010000000A00000040 "$ds@pitr-20261201T000000Z"
  zfs snapshot -o pitr-bundle:redo-wal=000000010000000A00000050 "$ds@pitr-20261202T000000Z"
  zfs snapshot -o pitr-bundle:redo-wal=000000010000000A00000001 "$ds@other-20261203T000000Z"
  [ "$(wal_continuity_start "$ds" pitr- pitr-bundle:redo-wal pitr-bundle:wal-kept-from)" = 000000010000000A00000040 ]
  zfs set pitr-bundle:wal-kept-from=000000020000000A00000048 "$ds"
  [ "$(wal_continuity_start "$ds" pitr- pitr-bundle:redo-wal pitr-bundle:wal-kept-from)" = 000000020000000A00000048 ]
  zfs set pitr-bundle:wal-kept-from=000000010000000A00000030 "$ds"
  [ "$(wal_continuity_start "$ds" pitr- pitr-bundle:redo-wal pitr-bundle:wal-kept-from)" = 000000010000000A00000040 ]
}

@test "continuity: the segment size comes from the standby's pg_controldata when it can be read" {
  mkdir -p "$SANDBOX/pgdata/global"
  : >"$SANDBOX/pgdata/global/pg_control"
  STUB_TARGET=$SANDBOX/pghome/bin stub pg_controldata 'printf "Latest checkpoint location:           0/2000060\nBytes per WAL segment:                67108864\n"'
  [ "$(wal_segment_bytes "$SANDBOX/pghome" "$SANDBOX/pgdata")" = 67108864 ]
  [ -z "$(wal_segment_bytes "$SANDBOX/pghome" "$SANDBOX/none")" ]
  STUB_TARGET=$SANDBOX/pghome/bin stub pg_controldata 'exit 1'
  [ -z "$(wal_segment_bytes "$SANDBOX/pghome" "$SANDBOX/pgdata")" ]
}

@test "continuity: the report names the first missing file and the restorable ranges either side" {
  run_of 40 44
  rm "$ARCH/2026-12-01/000000010000000A00000042"
  touch -d '2026-12-01 10:11:00 UTC' "$ARCH/2026-12-01/000000010000000A00000041"
  run -1 wal_continuity zp1/none pitr- "$ARCH" "$SANDBOX/pghome" "$SANDBOX/pgdata" 0 p q
  wal_continuity zp1/none pitr- "$ARCH" "$SANDBOX/pghome" "$SANDBOX/pgdata" 0 p q || true
  [ "$WAL_CONTINUITY_TEXT" = "archive gap: 000000010000000A00000042 missing; restorable up to 000000010000000A00000041 (archived 2026-12-01 10:11 UTC) and from 000000010000000A00000043 on; 1 segment(s) missing up to 000000010000000A00000044; take a new base backup" ]
  [ "$WAL_CONTINUITY_MISSING" -eq 1 ]
  run_of 42 42
  run -0 wal_continuity zp1/none pitr- "$ARCH" "$SANDBOX/pghome" "$SANDBOX/pgdata" 0 p q
  wal_continuity zp1/none pitr- "$ARCH" "$SANDBOX/pghome" "$SANDBOX/pgdata" 0 p q
  [ "$WAL_CONTINUITY_TEXT" = "archive continuous from 000000010000000A00000040 to 000000010000000A00000044 (5 segments of 16 MB)" ]
  run -3 wal_continuity zp1/none pitr- "$SANDBOX/none" "$SANDBOX/pghome" "$SANDBOX/pgdata" 0 p q
}
