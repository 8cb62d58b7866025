# zpool status outputs for the monitor's scrub check (monitor.bats). zfs-fuse's were captured
# on this project's machines (a mirror of two sparse files, the pool renamed zp1); OpenZFS 2.x's
# follow zpool_main.c's print_scan_status of 2.1, on the example host's devices. Tests put the
# dates they need in with scrub_on.

# zfs_fuse_status SCAN: zfs-fuse 0.7 (Debian 12) on a healthy mirror, its scan line SCAN
zfs_fuse_status() {
  printf '  pool: zp1\n state: ONLINE\n scrub: %s\n' "$1"
  cat <<'OUT'
config:

	NAME            STATE     READ WRITE CKSUM
	zp1           ONLINE       0     0     0
	  mirror-0      ONLINE       0     0     0
	    /tmp/rh/d1  ONLINE       0     0     0
	    /tmp/rh/d2  ONLINE       0     0     0

errors: No known data errors
OUT
}

zfs_fuse_none() { zfs_fuse_status "none requested"; }
zfs_fuse_done() { zfs_fuse_status "scrub completed after 0h0m with 0 errors on Sun Dec  6 23:55:14 2026"; }
# zpool_main.c's formats: "%s in progress for %lluh%um, %.2f%% done, %lluh%um to go",
# "%s %s after %lluh%um with %llu errors on %s" (stopped: zpool scrub -s)
zfs_fuse_running() { zfs_fuse_status "scrub in progress for 0h3m, 12.34% done, 0h21m to go"; }
zfs_fuse_stopped() { zfs_fuse_status "scrub stopped after 0h0m with 0 errors on Sun Dec  6 23:55:14 2026"; }

# zfs-fuse after 30 MB of one side of the mirror were overwritten and a scrub: the side's
# CKSUM count and the bytes repaired after it (captured whole)
zfs_fuse_repaired() {
  cat <<'OUT'
  pool: zp1
 state: ONLINE
status: One or more devices has experienced an unrecoverable error.  An
	attempt was made to correct the error.  Applications are unaffected.
action: Determine if the device needs to be replaced, and clear the errors
	using 'zpool clear' or replace the device with 'zpool replace'.
   see: http://www.sun.com/msg/ZFS-8000-9P
 scrub: scrub completed after 0h0m with 0 errors on Sun Dec  6 23:55:17 2026
config:

	NAME            STATE     READ WRITE CKSUM
	zp1           ONLINE       0     0     0
	  mirror-0      ONLINE       0     0     0
	    /tmp/rh/d1  ONLINE       0     0     0
	    /tmp/rh/d2  ONLINE       0     0   309  25.3M repaired

errors: No known data errors
OUT
}

# openzfs_status SCAN [STATUS]: OpenZFS 2.1 (Debian 12's zfsutils-linux) on the example host's
# raidz1, log and spare, its scan line(s) SCAN, after the status and action lines STATUS
openzfs_status() {
  printf '  pool: zp1\n state: ONLINE\n%s  scan: %s\n' "${2:-}" "$1"
  cat <<'OUT'
config:

	NAME                                                STATE     READ WRITE CKSUM
	zp1                                                 ONLINE       0     0     0
	  raidz1-0                                          ONLINE       0     0     0
	    ata-ST4000NM0033-9ZM170_Z1Z3RR01                ONLINE       0     0     0
	    ata-ST4000NM0033-9ZM170_Z1Z3RR02                ONLINE       0     0     0
	    ata-ST4000NM0033-9ZM170_Z1Z3RR03                ONLINE       0     0     0
	logs	
	  scsi-3600508b1001c2a5e7d9f3b4c8a1e0f42-part4      ONLINE       0     0     0
	spares
	  ata-ST4000NM0033-9ZM170_Z1Z3RR12                  AVAIL   

errors: No known data errors
OUT
}

openzfs_none() { openzfs_status "none requested"; }
openzfs_done() { openzfs_status "scrub repaired 0B in 00:00:02 with 0 errors on Sun Nov  1 03:00:14 2026"; }
openzfs_running() {
  openzfs_status "scrub in progress since Sun Dec  6 23:10:02 2026
	1.52T scanned at 1.20G/s, 310G issued at 245M/s, 21.8T total
	0B repaired, 1.39% done, 1 days 01:33:47 to go"
}
openzfs_canceled() { openzfs_status "scrub canceled on Sun Nov  1 03:05:10 2026"; }
openzfs_paused() {
  openzfs_status "scrub paused since Sun Nov  1 03:05:10 2026
	scrub started on Sun Nov  1 03:00:02 2026
	1.52T scanned, 310G issued, 21.8T total
	0B repaired, 1.39% done"
}
openzfs_resilvered() { openzfs_status "resilvered 1.21T in 03:02:11 with 0 errors on Mon Nov 16 14:20:05 2026"; }
# bytes repaired, the device counters cleared since (zpool clear)
openzfs_repaired_only() { openzfs_status "scrub repaired 1.50M in 00:12:41 with 0 errors on Sun Nov  1 03:12:41 2026"; }
# bytes repaired, found on a device that counted 12 checksum errors
openzfs_repaired() {
  openzfs_status "scrub repaired 1.50M in 00:12:41 with 0 errors on Sun Nov  1 03:12:41 2026" \
    "status: One or more devices has experienced an unrecoverable error.  An
	attempt was made to correct the error.  Applications are unaffected.
action: Determine if the device needs to be replaced, and clear the errors
	using 'zpool clear' or replace the device with 'zpool replace'.
   see: https://openzfs.github.io/openzfs-docs/msg/ZFS-8000-9P
" | sed '/RR03/s/     0$/    12/'
}
# data a scrub could not repair
openzfs_data_errors() {
  openzfs_status "scrub repaired 0B in 00:12:41 with 2 errors on Sun Nov  1 03:12:41 2026" \
    "status: One or more devices has experienced an error resulting in data
	corruption.  Applications may be affected.
action: Restore the file in question if possible.  Otherwise restore the
	entire pool from backup.
   see: https://openzfs.github.io/openzfs-docs/msg/ZFS-8000-8A
" | sed -e '/RR02/s/     0$/     4/' -e "s/^errors: .*/errors: 2 data errors, use '-v' for a list/"
}

# pg_controldata of a running 9.0 standby with 64 MB segments (the example's pg168104), its
# state given: "in archive recovery", or "in production" once promoted
controldata_90() {
  cat <<OUT
pg_control version number:            903
Catalog version number:               201008051
Database system identifier:           5926351021184733315
Database cluster state:               $1
pg_control last modified:             Sun 06 Dec 2026 11:40:12 PM UTC
Latest checkpoint location:           0/14000058
Prior checkpoint location:            0/10000058
Latest checkpoint's REDO location:    0/14000020
Latest checkpoint's TimeLineID:       1
Latest checkpoint's NextXID:          0/1043
Latest checkpoint's NextOID:          24576
Latest checkpoint's NextMultiXactId:  1
Latest checkpoint's NextMultiOffset:  0
Latest checkpoint's oldestXID:        654
Latest checkpoint's oldestXID's DB:   1
Latest checkpoint's oldestActiveXID:  1042
Time of latest checkpoint:            Sun 06 Dec 2026 11:35:02 PM UTC
Minimum recovery ending location:     0/14000080
Backup start location:                0/0
Current wal_level setting:            hot_standby
Current max_connections setting:      100
Current max_prepared_xacts setting:   0
Current max_locks_per_xact setting:   64
Maximum data alignment:               8
Database block size:                  8192
Blocks per segment of large relation: 131072
WAL block size:                       8192
Bytes per WAL segment:                67108864
Maximum length of identifiers:        64
Maximum columns in an index:          32
Maximum size of a TOAST chunk:        1996
Date/time type storage:               64-bit integers
Float4 argument passing:              by value
Float8 argument passing:              by value
OUT
}
