#!/usr/bin/env bash
# Build (or reuse from the cache) the Debian 12 guest image of the real-OpenZFS test tier.
#
# Usage: tests/qemu/build-image.sh [--force]
#
# Prints the image directory on stdout (everything else goes to stderr). The directory holds
#   base.raw     3 GB ext4 root file system (fixed UUID, see root-uuid)
#   vmlinuz      the guest kernel (Debian's linux-image-amd64 of bookworm)
#   initrd.img   its initramfs
#   root-uuid    the UUID to pass as root=UUID=...
#   build-info   kernel, OpenZFS and PostgreSQL versions, mirror, timings
#   logs/        debootstrap, apt and mkfs logs of the build
#   complete     written last: the image is usable
# in ${PITR_QEMU_CACHE:-<repo>/.cache/qemu}/<key>/, where <key> hashes this recipe (this
# script, guest-init.sh and the package list): a changed recipe builds a new image.
#
# Needs root (debootstrap, chroot, mounts). Installs the host packages qemu-system-x86,
# qemu-utils and debootstrap if they are missing. A fresh build takes ~9-10 minutes on two
# cores (DKMS compiles the zfs module for the guest kernel); a cache hit takes well under 1 s.
# The logs of a failed build stay in <cache>/<key>.logs/.
#
# Environment:
#   PITR_QEMU_CACHE     cache root (default: <repo>/.cache/qemu)
#   PITR_DEBIAN_MIRROR  Debian mirror (default: the one the host's apt sources use)
#   PITR_DEBIAN_SECURITY_MIRROR  security mirror (default: the host's; "none" to skip)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
INIT_SRC=$HERE/guest-init.sh
SYSTEMD_RUN_SRC=$HERE/guest-systemd-run.sh
SYSTEMD_UNIT_SRC=$HERE/pitr-ci.service
CACHE_ROOT=${PITR_QEMU_CACHE:-$REPO/.cache/qemu}

SUITE=bookworm
IMAGE_SIZE=3G
ROOT_UUID=7c3f2a51-9d4e-4b6a-8f10-5e2d9c0b7a31
HOST_PACKAGES=(qemu-system-x86 qemu-utils debootstrap e2fsprogs)
DEBOOTSTRAP_INCLUDE=systemd-sysv,udev,kmod
# Installed in the chroot with --no-install-recommends. bash, coreutils, util-linux and mawk
# are already in the minbase variant; they are listed to document what tests rely on.
GUEST_PACKAGES=(
    linux-image-amd64 linux-headers-amd64 initramfs-tools
    zfs-dkms zfsutils-linux
    postgresql-15 postgresql-client-15
    bash coreutils util-linux procps gawk mawk kmod iproute2
    # the system tier (systemd as PID 1): what a backup host and a primary run
    nfs-kernel-server nfs-common rpcbind netbase sudo cron iputils-ping
)
# Units that only cost boot time in a throw-away guest, and the login prompts that would take
# over the serial console mid-test when systemd is PID 1.
MASKED_UNITS=(
    serial-getty@ttyS0.service getty.target
    apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer
    e2scrub_all.timer e2scrub_reap.service fstrim.timer
)

FORCE=0
case ${1:-} in
    --force) FORCE=1 ;;
    '') ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' >&2
        exit 0
        ;;
    *)
        echo "usage: $0 [--force]" >&2
        exit 2
        ;;
esac

T_BEGIN=$EPOCHREALTIME
log() { printf '[build-image %6.1fs] %s\n' "$(elapsed_since "$T_BEGIN")" "$*" >&2; }
die() {
    log "ERROR: $*"
    exit 1
}
elapsed_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

TIMINGS=()
STEP_NAME='' STEP_T0=''
step() { # step <name>: ends the previous step (recording its duration), starts a new one
    if [[ -n $STEP_NAME ]]; then
        local took
        took=$(elapsed_since "$STEP_T0")
        TIMINGS+=("$STEP_NAME: ${took} s")
        log "done: $STEP_NAME (${took} s)"
    fi
    STEP_NAME=${1:-} STEP_T0=$EPOCHREALTIME
    [[ -z $STEP_NAME ]] || log "step: $STEP_NAME"
}

[[ $(id -u) -eq 0 ]] || die "must run as root (debootstrap, chroot, mounts)"
for f in "$INIT_SRC" "$SYSTEMD_RUN_SRC" "$SYSTEMD_UNIT_SRC"; do
    [[ -f $f ]] || die "missing $f"
done

# --- host packages ---------------------------------------------------------------------------
ensure_host_packages() {
    local missing=() pkg
    for pkg in "${HOST_PACKAGES[@]}"; do
        if [[ $(dpkg-query -W -f '${Status}' "$pkg" 2>/dev/null) != 'install ok installed' ]]; then
            missing+=("$pkg")
        fi
    done
    ((${#missing[@]} == 0)) && return 0
    step "host packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local hostlog
    hostlog=$(mktemp "${TMPDIR:-/tmp}/pitr-host-apt.XXXXXX")
    if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } \
        > "$hostlog" 2>&1; then
        tail -n 30 "$hostlog" >&2
        die "installing host packages failed (full log: $hostlog)"
    fi
    rm -f "$hostlog"
    step
}
ensure_host_packages

# --- cache key -------------------------------------------------------------------------------
cache_key() {
    {
        printf 'suite=%s size=%s uuid=%s include=%s\n' "$SUITE" "$IMAGE_SIZE" "$ROOT_UUID" \
            "$DEBOOTSTRAP_INCLUDE"
        printf 'package %s\n' "${GUEST_PACKAGES[@]}"
        sha256sum < "${BASH_SOURCE[0]}"
        sha256sum < "$INIT_SRC"
        sha256sum < "$SYSTEMD_RUN_SRC"
        sha256sum < "$SYSTEMD_UNIT_SRC"
        printf 'mask %s\n' "${MASKED_UNITS[@]}"
    } | sha256sum | cut -c1-16
}
KEY=$(cache_key)
OUT=$CACHE_ROOT/$KEY
mkdir -p "$CACHE_ROOT"

# One builder per key at a time; a second caller waits and then reuses the result.
exec 9> "$CACHE_ROOT/$KEY.lock"
if ! flock -n 9; then
    log "another build of $KEY is running; waiting for its lock"
    flock 9
fi

if [[ -f $OUT/complete && $FORCE -eq 0 ]]; then
    log "reusing cached image $OUT"
    printf '%s\n' "$OUT"
    exit 0
fi
log "building image $KEY (no complete cache entry at $OUT)"

# --- mirror ----------------------------------------------------------------------------------
# Prints the first URI of an enabled "deb" entry for <suite> in the host's apt sources, in
# either the one-line format (sources.list, *.list) or deb822 (*.sources).
host_mirror_for() {
    local suite=$1 f
    local files=()
    [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
    for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f $f ]] && files+=("$f")
    done
    for f in "${files[@]}"; do
        if [[ $f == *.sources ]]; then
            awk -v want="$suite" '
                function flush(   u) {
                    if (!done && enabled && types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " want " ") && uris != "") {
                        split(uris, u, " "); print u[1]; done = 1
                    }
                    types = ""; uris = ""; suites = ""; enabled = 1; key = ""
                }
                BEGIN { enabled = 1 }
                /^[ \t]*#/ { next }
                /^[ \t]*$/ { flush(); next }
                /^[ \t]/ { if (key == "uris") uris = uris " " $0; else if (key == "suites") suites = suites " " $0; next }
                {
                    i = index($0, ":"); if (i == 0) next
                    key = tolower(substr($0, 1, i - 1)); val = substr($0, i + 1)
                    gsub(/^[ \t]+|[ \t]+$/, "", val)
                    if (key == "types") types = val
                    else if (key == "uris") uris = val
                    else if (key == "suites") suites = val
                    else if (key == "enabled") enabled = (tolower(val) != "no")
                }
                END { flush() }
            ' "$f"
        else
            awk -v want="$suite" '
                $1 == "deb" {
                    i = 2
                    if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                    if ($(i + 1) == want) { print $i; exit }
                }
            ' "$f"
        fi
    done | grep -E '^(https?|file)://' | head -n1 || true
}

MIRROR=${PITR_DEBIAN_MIRROR:-$(host_mirror_for "$SUITE")}
MIRROR=${MIRROR%/}
[[ -n $MIRROR ]] || die "no Debian mirror for $SUITE in /etc/apt (set PITR_DEBIAN_MIRROR)"
SECURITY_MIRROR=${PITR_DEBIAN_SECURITY_MIRROR:-$(host_mirror_for "$SUITE-security")}
SECURITY_MIRROR=${SECURITY_MIRROR%/}
[[ $SECURITY_MIRROR == none ]] && SECURITY_MIRROR=''
log "mirror: $MIRROR; security mirror: ${SECURITY_MIRROR:-(none)}"

# --- work area and cleanup -------------------------------------------------------------------
WORK=$CACHE_ROOT/$KEY.build
ROOTFS=$WORK/rootfs
LOGS=$CACHE_ROOT/$KEY.logs

# Mount points below <dir>, deepest first.
mounts_under() {
    awk -v d="$1/" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r
}

# Kill processes whose root directory is the chroot (a daemon a postinst left behind keeps
# the bind mounts busy). They are all children of this build.
kill_chroot_processes() {
    local p root pids=()
    for p in /proc/[0-9]*; do
        root=$(readlink "$p/root" 2>/dev/null) || continue
        [[ $root == "$ROOTFS" ]] && pids+=("${p#/proc/}")
    done
    ((${#pids[@]} == 0)) && return 0
    log "killing processes left in the chroot: ${pids[*]}"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    sleep 1
    kill -KILL "${pids[@]}" 2>/dev/null || true
}

unmount_chroot() {
    [[ -d $ROOTFS ]] || return 0
    kill_chroot_processes
    local m
    while read -r m; do
        [[ -n $m ]] || continue
        umount "$m" 2>/dev/null || umount -l "$m" || log "WARN: cannot unmount $m"
    done < <(mounts_under "$ROOTFS")
}

# rm -rf of the work area, but only when nothing is mounted under it (a bound /dev!).
remove_work() {
    [[ -e $WORK ]] || return 0
    unmount_chroot
    if [[ -n $(mounts_under "$WORK") ]]; then
        log "WARN: still mounted under $WORK, not removing it: $(mounts_under "$WORK" | tr '\n' ' ')"
        return 1
    fi
    rm -rf --one-file-system "$WORK"
}

on_exit() {
    local rc=$?
    trap - EXIT INT TERM
    unmount_chroot || true
    if ((rc != 0)); then
        log "build FAILED (exit $rc); logs in $LOGS; removing $WORK"
        remove_work || true
    fi
    exit "$rc"
}
trap on_exit EXIT
trap 'log "interrupted"; exit 130' INT
trap 'log "terminated"; exit 143' TERM

remove_work || die "cannot clean the stale work area $WORK"
rm -rf "$LOGS"
mkdir -p "$WORK" "$LOGS"

# logged <name> <command...>: output to $LOGS/<name>.log; on failure show its tail and die.
logged() {
    local name=$1
    shift
    if ! "$@" > "$LOGS/$name.log" 2>&1; then
        tail -n 40 "$LOGS/$name.log" >&2
        die "$name failed (log above; full log $LOGS/$name.log)"
    fi
}

in_chroot() {
    chroot "$ROOTFS" /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        HOME=/root LC_ALL=C DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true \
        "$@"
}

# --- debootstrap -----------------------------------------------------------------------------
step "debootstrap $SUITE (minbase, main+contrib)"
logged debootstrap debootstrap --variant=minbase --components=main,contrib \
    --include="$DEBOOTSTRAP_INCLUDE" "$SUITE" "$ROOTFS" "$MIRROR"

# --- chroot configuration --------------------------------------------------------------------
step "chroot configuration"
{
    echo "deb $MIRROR $SUITE main contrib"
    echo "deb $MIRROR $SUITE-updates main contrib"
    [[ -z $SECURITY_MIRROR ]] || echo "deb $SECURITY_MIRROR $SUITE-security main contrib"
} > "$ROOTFS/etc/apt/sources.list"
cat > "$ROOTFS/etc/apt/apt.conf.d/90pitr-test" << 'EOF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
Dpkg::Options { "--force-confdef"; "--force-confold"; };
EOF
# Smaller image: no manuals, docs (copyright files kept) or translations.
cat > "$ROOTFS/etc/dpkg/dpkg.cfg.d/90pitr-test-nodoc" << 'EOF'
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
EOF
printf '#!/bin/sh\nexit 101\n' > "$ROOTFS/usr/sbin/policy-rc.d"
chmod 0755 "$ROOTFS/usr/sbin/policy-rc.d"
cp -L /etc/resolv.conf "$ROOTFS/etc/resolv.conf" 2>/dev/null || true
echo pitr-guest > "$ROOTFS/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tpitr-guest\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
    > "$ROOTFS/etc/hosts"
printf 'UUID=%s\t/\text4\terrors=remount-ro\t0\t1\n' "$ROOT_UUID" > "$ROOTFS/etc/fstab"
# Drivers for emulated hardware no test needs: udev loading them costs seconds under TCG.
printf 'blacklist %s\n' kvm kvm_amd kvm_intel bochs bochs_drm parport_pc ppdev pcspkr \
    iTCO_wdt iTCO_vendor_support floppy joydev > "$ROOTFS/etc/modprobe.d/pitr-test-blacklist.conf"

mount -t proc proc "$ROOTFS/proc"
mount -t sysfs sysfs "$ROOTFS/sys"
mount --rbind /dev "$ROOTFS/dev"
mount --make-rslave "$ROOTFS/dev"

# --- packages --------------------------------------------------------------------------------
step "apt-get update (chroot)"
logged apt-update in_chroot apt-get update

# Configured before the kernel comes: a small initramfs with just the drivers of the root
# disk (virtio-blk, ext4) unpacks and boots faster than MODULES=most; and no "main"
# PostgreSQL cluster (tests create their own with initdb).
step "initramfs-tools + postgresql-common (chroot)"
logged apt-install-early in_chroot apt-get install -y initramfs-tools postgresql-common
printf 'MODULES=list\n' > "$ROOTFS/etc/initramfs-tools/conf.d/pitr-test"
printf '%s\n' virtio_pci virtio_blk ext4 crc32c_generic crc32c_intel \
    >> "$ROOTFS/etc/initramfs-tools/modules"
sed -i 's/^#\{0,1\}[[:space:]]*create_main_cluster[[:space:]]*=.*/create_main_cluster = false/' \
    "$ROOTFS/etc/postgresql-common/createcluster.conf"
grep -q '^create_main_cluster = false' "$ROOTFS/etc/postgresql-common/createcluster.conf" \
    || die "could not disable create_main_cluster"

step "apt-get install ${GUEST_PACKAGES[*]} (chroot; DKMS builds zfs, 6-13 min)"
logged apt-install in_chroot apt-get install -y "${GUEST_PACKAGES[@]}"

step "check the zfs module"
mapfile -t KVERS < <(find "$ROOTFS/lib/modules" -mindepth 1 -maxdepth 1 -type d -printf '%f\n' | sort -V)
((${#KVERS[@]} == 1)) || die "expected one guest kernel, found: ${KVERS[*]:-none}"
KVER=${KVERS[0]}
find_zfs_ko() { find "$ROOTFS/lib/modules/$KVER" -name 'zfs.ko*' -print -quit; }
if [[ -z $(find_zfs_ko) ]]; then
    log "zfs.ko not built for $KVER by the package scripts; running dkms autoinstall"
    logged dkms-autoinstall in_chroot dkms autoinstall -k "$KVER"
fi
[[ -n $(find_zfs_ko) ]] || die "no zfs.ko for the guest kernel $KVER"
in_chroot depmod -a "$KVER"
log "guest kernel $KVER; module $(find_zfs_ko | sed "s|^$ROOTFS||")"
[[ -f $ROOTFS/boot/vmlinuz-$KVER ]] || die "missing /boot/vmlinuz-$KVER"
[[ -f $ROOTFS/boot/initrd.img-$KVER ]] || die "missing /boot/initrd.img-$KVER"

guest_pkg_version() { dpkg-query --admindir="$ROOTFS/var/lib/dpkg" -W -f '${Version}' "$1"; }
ZFS_VERSION=$(guest_pkg_version zfsutils-linux)
PG_VERSION=$(guest_pkg_version postgresql-15)
KPKG_VERSION=$(guest_pkg_version "linux-image-$KVER")

# --- finish the root file system -------------------------------------------------------------
step "finish the root file system"
install -m 0755 "$INIT_SRC" "$ROOTFS/sbin/pitr-test-init"
# systemd mode (run-guest.sh --systemd): pitr-ci.service runs the test after multi-user.target
install -m 0755 "$SYSTEMD_RUN_SRC" "$ROOTFS/usr/local/sbin/pitr-ci-run"
install -m 0644 "$SYSTEMD_UNIT_SRC" "$ROOTFS/etc/systemd/system/pitr-ci.service"
logged systemctl-setup in_chroot sh -c "systemctl set-default multi-user.target \
    && systemctl enable pitr-ci.service && systemctl mask ${MASKED_UNITS[*]}"
in_chroot apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin
rm -f "$ROOTFS/usr/sbin/policy-rc.d" "$ROOTFS/etc/resolv.conf"
rm -rf "${ROOTFS:?}"/tmp/* "$ROOTFS"/var/tmp/*
unmount_chroot
[[ -z $(mounts_under "$ROOTFS") ]] || die "still mounted under $ROOTFS"
ROOTFS_MB=$(du -sm --one-file-system "$ROOTFS" | cut -f1)
log "root file system: ${ROOTFS_MB} MB"

step "mkfs.ext4 -d ($IMAGE_SIZE raw image)"
STAGE=$WORK/out
mkdir -p "$STAGE"
truncate -s "$IMAGE_SIZE" "$STAGE/base.raw"
logged mkfs mkfs.ext4 -F -L pitr-root -U "$ROOT_UUID" -d "$ROOTFS" "$STAGE/base.raw"
cp "$ROOTFS/boot/vmlinuz-$KVER" "$STAGE/vmlinuz"
cp "$ROOTFS/boot/initrd.img-$KVER" "$STAGE/initrd.img"
echo "$ROOT_UUID" > "$STAGE/root-uuid"
step

{
    echo "key=$KEY"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "mirror=$MIRROR"
    echo "security_mirror=${SECURITY_MIRROR:-none}"
    echo "kernel=$KVER ($KPKG_VERSION)"
    echo "zfsutils-linux=$ZFS_VERSION"
    echo "postgresql-15=$PG_VERSION"
    echo "rootfs_mb=$ROOTFS_MB"
    printf 'timing %s\n' "${TIMINGS[@]}"
    echo "timing total: $(elapsed_since "$T_BEGIN") s"
} > "$STAGE/build-info"

# Publish: replace any old (incomplete or forced) entry, then write the marker last.
mv "$LOGS" "$STAGE/logs"
rm -rf --one-file-system "$OUT"
mv "$STAGE" "$OUT"
sync
touch "$OUT/complete"
remove_work || true

log "image ready: $OUT"
sed 's/^/    /' "$OUT/build-info" >&2
printf '%s\n' "$OUT"
