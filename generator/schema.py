"""The spec schema: typed models with unknown keys forbidden.

Every string that reaches a script is either held to a safe pattern here, or is quoted for its
destination by the templates. Patterns are deliberately narrow: names of pools, datasets,
users and paths never need shell metacharacters.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal, Optional, Union

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field,
                      StringConstraints, model_validator)

# --- safe string types -----------------------------------------------------------------------

HostName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")]
# cluster and OS user names: what useradd accepts everywhere, and safe in paths and shell
ClusterName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,30}$")]
OsUserName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_-]{0,30}$")]
PoolName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$")]
DatasetName = Annotated[str, StringConstraints(
    pattern=r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}(/[A-Za-z0-9][A-Za-z0-9_.:-]{0,63})+$")]
ZfsPropertyName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.:-]{0,63}$")]


def _no_dot_segments(path: str) -> str:
    if any(part in (".", "..") for part in path.split("/")):
        raise ValueError("must not contain '.' or '..' segments")
    if len(path) > 1 and path.endswith("/"):
        raise ValueError("must not end with '/'")
    return path


AbsPath = Annotated[str, StringConstraints(pattern=r"^/[A-Za-z0-9._+@:/-]{0,4000}$"),
                    AfterValidator(_no_dot_segments)]


def _yaml_on_off(value):
    """YAML 1.1 reads a bare `off` as False and `8` as a number: give ZFS and PostgreSQL back
    the text the user meant (both read on/off)."""
    if value is True:
        return "on"
    if value is False:
        return "off"
    if isinstance(value, (int, float)):
        return str(value)
    return value


ZfsPropertyValue = Annotated[str, BeforeValidator(_yaml_on_off),
                             StringConstraints(pattern=r"^[A-Za-z0-9_.:,+=/@-]{1,1024}$")]
ZfsProperties = dict[ZfsPropertyName, ZfsPropertyValue]


def _address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*", value):
        return value
    raise ValueError("must be an IP address or a host name")


Address = Annotated[str, StringConstraints(max_length=253), AfterValidator(_address)]
Port = Annotated[int, Field(ge=1024, le=65535)]
SystemPort = Annotated[int, Field(ge=1, le=65535)]


def _version_text(value):
    """`version: 9.0` in YAML is a float; the user meant the text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


# a PostgreSQL size setting as postgresql.conf takes it: "50GB", "512MB"
PgSize = Annotated[str, BeforeValidator(_version_text),
                   StringConstraints(pattern=r"^[1-9][0-9]{0,8}(kB|MB|GB|TB)$")]
SIZE_UNITS = {"kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def size_bytes(size: str) -> int:
    """'16MB' -> 16777216 (PostgreSQL's units are powers of 1024)."""
    return int(size[:-2]) * SIZE_UNITS[size[-2:]]


PgVersion = Annotated[str, BeforeValidator(_version_text),
                      StringConstraints(pattern=r"^(9\.[0-6]|[1-9][0-9])(\.[0-9]{1,3})?$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- host spec -------------------------------------------------------------------------------

DEFAULT_ROOT_PROPERTIES = {"compression": "lz4", "atime": "off", "canmount": "off",
                           "dedup": "off"}

MIN_DISKS = {"raidz1": 3, "raidz2": 4, "raidz3": 5, "mirror": 2}


class Vdev(Strict):
    type: Literal["raidz1", "raidz2", "raidz3", "mirror"]
    disks: list[AbsPath]

    @model_validator(mode="after")
    def _enough_disks(self):
        needed = MIN_DISKS[self.type]
        if len(self.disks) < needed:
            raise ValueError(f"a {self.type} vdev needs at least {needed} disks, "
                             f"got {len(self.disks)}")
        return self


class LogDevices(Strict):
    # single: each device is its own log vdev (protected by hardware RAID, as in the runbook);
    # mirror: the devices form one mirrored log vdev (what a JBOD needs)
    type: Literal["single", "mirror"] = "mirror"
    devices: list[AbsPath] = Field(min_length=1)

    @model_validator(mode="after")
    def _mirror_needs_two(self):
        if self.type == "mirror" and len(self.devices) < 2:
            raise ValueError("a mirrored log needs at least 2 devices")
        return self


class Pool(Strict):
    name: PoolName
    ashift: int = Field(default=12, ge=9, le=16)
    vdevs: list[Vdev] = Field(min_length=1)
    log: Optional[LogDevices] = None
    cache: list[AbsPath] = []
    spares: list[AbsPath] = []
    # "by-id" refuses anything but /dev/disk/by-id/... (sdX names move between boots);
    # "any" is for test rigs on files or loop devices and must be asked for explicitly.
    device_paths: Literal["by-id", "any"] = "by-id"
    # properties of the pool's root dataset, inherited by every dataset (zpool create -O)
    properties: ZfsProperties = {}
    # pool properties other than ashift (zpool create -o), e.g. cachefile=none for test rigs
    pool_options: ZfsProperties = {}
    # where the root dataset would mount; with canmount=off it never does
    mountpoint: Optional[AbsPath] = None

    @property
    def root_properties(self) -> dict[str, str]:
        return {**DEFAULT_ROOT_PROPERTIES, **self.properties}

    @property
    def all_devices(self) -> list[str]:
        devices = [d for vdev in self.vdevs for d in vdev.disks]
        devices += self.log.devices if self.log else []
        return devices + list(self.cache) + list(self.spares)


class SharedDataset(Strict):
    name: DatasetName
    mountpoint: AbsPath
    properties: ZfsProperties = {}


class SharedDatasets(Strict):
    pg_home: SharedDataset  # PostgreSQL builds, one folder per cluster
    pg_arch: SharedDataset  # WAL archives, one folder per cluster, exported over NFS
    pg_log: SharedDataset  # server logs of the standbys


class NfsPorts(Strict):
    """Fixed NFS helper ports (the runbook's values) so firewalls and remounts keep working."""

    rquotad: SystemPort = 875
    lockd_tcp: SystemPort = 32803
    lockd_udp: SystemPort = 32769
    mountd: SystemPort = 892
    statd: SystemPort = 662
    statd_outgoing: SystemPort = 2020
    rdma: SystemPort = 20049


ExportOptions = Annotated[str, StringConstraints(pattern=r"^[a-z_]+(=[A-Za-z0-9_:/.-]+)?"
                                                         r"(,[a-z_]+(=[A-Za-z0-9_:/.-]+)?)*$")]


class Nfs(Strict):
    exports_file: AbsPath = "/etc/exports"
    options: ExportOptions = "rw,no_root_squash,sync"
    ports: NfsPorts = NfsPorts()
    # nfs.conf: nfs-utils >= 2 reads drop-ins from /etc/nfs.conf.d;
    # sysconfig: the runbook's /etc/sysconfig/nfs variables (RHEL/CentOS 6 and 7)
    ports_format: Literal["nfs.conf", "sysconfig"] = "nfs.conf"
    ports_file: AbsPath = "/etc/nfs.conf.d/pitr-bundle.conf"


class HostMonitor(Strict):
    user: OsUserName = "nagios"  # runs the check through sudo (PGDATA is 0700)
    pool_capacity_warn: int = Field(default=80, ge=1, le=100, description=(
        "WARNING when the pool is this full (percent, zpool capacity)"))
    pool_capacity_crit: int = Field(default=90, ge=1, le=100, description=(
        "CRITICAL when the pool is this full (percent)"))
    # the WAL archive of every cluster lives in one dataset: unbounded, it alone fills the pool
    archive_share_warn: int = Field(default=50, ge=1, le=100, description=(
        "WARNING when the archive dataset (datasets.pg_arch) takes this share of the pool's "
        "usable space (percent of the pool root's used + available)"))
    archive_share_crit: int = Field(default=70, ge=1, le=100, description=(
        "CRITICAL when the archive dataset takes this share of the pool's usable space"))

    @model_validator(mode="after")
    def _warn_below_crit(self):
        for name in ("pool_capacity", "archive_share"):
            if getattr(self, f"{name}_warn") > getattr(self, f"{name}_crit"):
                raise ValueError(f"{name}_warn is above {name}_crit")
        return self


class Review(Strict):
    """Signed reviews (pitr-bundle sign): how many distinct reviewers must have signed the
    bundle's SHA256SUMS before verify.sh or any script of the bundle runs on this host."""
    signatures_required: int = Field(
        default=0, ge=0, le=20,
        description="distinct allowed signers whose valid OpenSSH signature over SHA256SUMS "
                    "the host insists on (0: signatures are not required)")
    allowed_signers: AbsPath = Field(
        default="/etc/pitr-bundle/allowed_signers",
        description="the OpenSSH allowed_signers file on the backup host (and on the "
                    "primaries, for the scripts that run there) naming the reviewers' keys")

# a Linux interface name (IFNAMSIZ: 15 characters), safe in shell words and systemd units
InterfaceName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$")]


class VirtualIp(Strict):
    """The address primaries see the backup host connect from. With `interface`, the bundle
    brings it up itself (host/15-vip.sh) and routes connections to the primaries from it;
    without, it is managed outside the bundle (keepalived, pacemaker, the network setup)."""

    address: Address = Field(description=(
        "the virtual IP; every primary's pg_hba.conf allows replication from it"))
    interface: Optional[InterfaceName] = Field(default=None, description=(
        "the interface that carries the address (e.g. bond0, eth0), configured and up by the "
        "host's own network setup; set it to have host/15-vip.sh bring the address up and "
        "route connections to the primaries and HA partners from it (IPv4)"))
    prefix: Optional[int] = Field(default=None, ge=8, le=32, description=(
        "prefix length of the address, with interface only: 32 (default) adds the address "
        "alone, without a subnet route; the subnet's length (e.g. 24) makes it a secondary "
        "address of that subnet"))

    @model_validator(mode="after")
    def _managed_needs_ipv4(self):
        if self.interface is None:
            if self.prefix is not None:
                raise ValueError("prefix needs interface (the bundle sets up the address only "
                                 "when it knows the interface)")
            return self
        try:
            ipaddress.IPv4Address(self.address)
        except ValueError:
            raise ValueError(f"address {self.address} must be an IPv4 address when interface "
                             "is set (host/15-vip.sh routes IPv4)") from None
        return self

    @property
    def prefix_length(self) -> int:
        return 32 if self.prefix is None else self.prefix


def _virtual_ip_form(value):
    """The older form `virtual_ip: 192.168.1.199` is the address alone."""
    return {"address": value} if isinstance(value, str) else value


class HostSpec(Strict):
    name: HostName
    # the address primaries see the backup host connect from (pg_hba.conf); a virtual IP,
    # when set, is used instead so the backup host can move without touching the primaries
    address: Address
    virtual_ip: Annotated[Optional[VirtualIp], BeforeValidator(
        _virtual_ip_form, json_schema_input_type=Union[Address, VirtualIp, None])] = Field(
        default=None, description=(
            "the address primaries see the backup host connect from, instead of address: "
            "`virtual_ip: 192.168.1.199` when it is managed outside the bundle, or "
            "`virtual_ip: {address: 192.168.1.199, interface: bond0, prefix: 24}` to have "
            "host/15-vip.sh bring it up and route connections to the primaries from it"))
    pool: Pool
    datasets: SharedDatasets
    nfs: Nfs = Nfs()
    monitor: HostMonitor = HostMonitor()
    review: Review = Review()

    @property
    def replication_source(self) -> str:
        return self.virtual_ip.address if self.virtual_ip else self.address

    @property
    def managed_vip(self) -> Optional[VirtualIp]:
        """The virtual IP host/15-vip.sh brings up, if the spec asks for one."""
        return self.virtual_ip if self.virtual_ip and self.virtual_ip.interface else None


# --- cluster spec ----------------------------------------------------------------------------


FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
RoleName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
SettingName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.]{0,62}$")]
# free text that reaches scripts only through the shell-quoting filter: no NUL, bounded
FreeText = Annotated[str, StringConstraints(max_length=4096, pattern=r"^[^\x00]*$")]


SettingValue = Annotated[str, BeforeValidator(_yaml_on_off),
                         StringConstraints(max_length=1024, pattern=r"^[^\x00\n\r]*$")]


class Tarball(Strict):
    """A file the operator puts in /pg_home/<cluster>/soft_bak; checked before use."""

    file: FileName
    sha256: Sha256


class Extension(Strict):
    name: RoleName = Field(description=(
        "the extension's name: its library <name>.so (or the library its control file names) "
        "must be in the standby's PostgreSQL"))
    # a source build builds it from this tarball (PGXS); installed binaries need neither
    file: Optional[FileName] = Field(default=None, description=(
        "its source tarball in /pg_home/<cluster>/soft_bak (source builds only)"))
    sha256: Optional[Sha256] = Field(default=None, description=(
        "the tarball's sha256 (source builds only)"))
    make_args: list[FreeText] = []


class Postgres(Strict):
    version: PgVersion
    # installed PostgreSQL (distribution or PGDG packages) instead of a build from source
    binaries: Optional[AbsPath] = Field(default=None, description=(
        "the bin folder of an installed PostgreSQL of the primary's version, e.g. "
        "/usr/lib/postgresql/15/bin (Debian, Ubuntu) or /usr/pgsql-15/bin (PGDG on RHEL): "
        "then nothing is built; 35-check-binaries.sh checks that its version is the "
        "primary's (major and minor) and that the extensions' libraries are there, and every "
        "script uses its parent folder as PGHOME. Give version with its minor (15.18); leave "
        "configure, source and the extensions' tarballs out"))
    # the primary's ./configure options (`pitr-bundle import-pg-config` writes them), kept
    # exactly; only --prefix is rewritten to /pg_home/<cluster>/pgsql<version>
    configure: list[FreeText] = []
    source: Optional[Tarball] = None
    contrib: bool = True
    extensions: list[Extension] = []
    make_jobs: int = Field(default=2, ge=1, le=256)

    @property
    def major(self) -> int:
        """10 for 10.x; 90 for 9.0.x (the pre-10 numbering has two-part majors)."""
        parts = self.version.split(".")
        return int(parts[0]) * 10 + int(parts[1]) if parts[0] == "9" else int(parts[0])

    @property
    def major_text(self) -> str:
        parts = self.version.split(".")
        return ".".join(parts[:2]) if parts[0] == "9" else parts[0]


# a systemd unit name, as `systemctl` takes it (postgresql@15-main.service)
UnitName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:@-]{1,200}\.(service|target)$")]

# what a slot may hold on the primary when the spec does not say (13+): the warning asks for
# a value below the free space of the primary's WAL disk, which only its owner knows
DEFAULT_MAX_SLOT_WAL_KEEP_SIZE = "10GB"


class Primary(Strict):
    address: Address
    port: SystemPort = 5432
    ha_partner: Optional[Address] = None
    # the primary's data directory (the 9.0 base backup copies it; its layout names the
    # default systemd unit) and OS user (runs psql on the primary's local socket)
    data_dir: Optional[AbsPath] = None
    os_user: OsUserName = "postgres"
    archive_mount: Optional[AbsPath] = Field(default=None, description=(
        "where the primary (and its HA partner) mounts this cluster's archive export; the "
        "WAL goes to <archive_mount>/arch/<UTC day>/. Default: /pgarch/<cluster name> (the "
        "runbook's /pgarch, one folder per cluster so that clusters whose primaries share a "
        "server never mix their WAL)"))
    archive_script: Optional[AbsPath] = Field(default=None, description=(
        "the WAL copy helper installed on the primary and run by archive_command. Default: "
        "/usr/local/sbin/pitr-archive-wal-<cluster name>"))
    systemd_unit: Optional[UnitName] = Field(default=None, description=(
        "the primary's PostgreSQL systemd unit: the archive mount unit is ordered Before= it, "
        "and 45-apply-on-primary.sh --restart restarts it. Default: Debian's "
        "postgresql@<version>-<name>.service when data_dir is in Debian's layout "
        "(/var/lib/postgresql/<version>/<name>), else RHEL/PGDG's postgresql-<major>.service "
        "(e.g. postgresql-15.service); a source build's own unit must be named here"))
    # run it through sudo (the export belongs to root, no_root_squash): the runbook's way
    archive_via_sudo: bool = True
    # the helper refuses to archive unless archive_mount is a mount point (off: test rigs
    # whose archive is a local folder)
    archive_requires_mount: bool = True
    mount_options: Annotated[str, StringConstraints(
        pattern=r"^[a-z0-9_]+(=[A-Za-z0-9_.:/-]+)?(,[a-z0-9_]+(=[A-Za-z0-9_.:/-]+)?)*$")] = \
        "rw,hard,nfsvers=3"
    # the primary's values of settings a hot standby must not undercut
    settings: dict[SettingName, SettingValue] = {}
    # an idle primary still archives: a segment is switched at most this many seconds after
    # its first write (0: never forced). Bounds how old the newest restorable point can be.
    archive_timeout: int = Field(default=60, ge=0, le=86400, description=(
        "seconds: the primary switches to a new WAL segment at most this long after a write, "
        "so the newest restorable point is never older (0: off)"))
    # 13+ and a replication slot: the most WAL the slot may hold on the primary while the
    # standby is away (unset: DEFAULT_MAX_SLOT_WAL_KEEP_SIZE, with a warning from validate)
    max_slot_wal_keep_size: Optional[PgSize] = Field(default=None, description=(
        "13+ with a replication slot: the most WAL the slot keeps on the primary while the "
        "standby is away (unset: 10GB, and validate warns)"))
    # off by default. When set: once the WAL waiting to be archived (.ready files in the
    # primary's archive_status, times the segment size) exceeds it, the helper reports
    # success and drops the file, loudly (syslog, server log, a count in archive_state_dir):
    # the backup loses WAL, the primary keeps its disk (pgBackRest's archive-push-queue-max)
    archive_queue_max: Optional[PgSize] = Field(default=None, description=(
        "off when unset: past this much WAL waiting to be archived, the archive helper drops "
        "WAL files (reports success, logs to syslog, counts them) instead of filling the "
        "primary's disk"))
    # where the helper counts the WAL files it dropped (on the primary)
    archive_state_dir: AbsPath = Field(default="/var/lib/pitr-bundle", description=(
        "on the primary: where the archive helper counts the WAL files it dropped "
        "(<cluster>-dropped-wal)"))

    @property
    def nodes(self) -> list[str]:
        return [self.address] + ([self.ha_partner] if self.ha_partner else [])


class Replication(Strict):
    user: RoleName = "replicator"
    slot: Optional[RoleName] = Field(default=None, description=(
        "a physical replication slot the standby streams through (PostgreSQL 9.4 and later): "
        "45-apply-on-primary.sh creates it on the primary when it is missing, so the primary "
        "keeps the WAL the standby has not received yet (drop the slot if the standby is "
        "given up)"))


class Standby(Strict):
    # off lets the standby run with smaller memory settings than the primary (the runbook's
    # choice); on opens it for read-only queries but then max_connections and friends must be
    # at least the primary's
    hot_standby: bool = False
    settings: dict[SettingName, SettingValue] = {
        "shared_buffers": "128MB", "max_connections": "100"}


class Archive(Strict):
    # further hosts that may mount the archive export besides the primary and its HA partner
    extra_clients: list[Address] = []
    # point-in-time restores are possible to any time of the last N days: the WAL retention
    # keeps the WAL from the REDO point of the newest snapshot taken at or before that start
    # (7: the default keep.daily; older snapshots restore to their own point, --snapshot)
    pitr_window_days: int = Field(default=7, ge=1, le=3650, description=(
        "restores to any time of the last N days; the WAL retention deletes the WAL no such "
        "restore needs"))
    wal_mb_per_hour: Optional[int] = Field(default=None, ge=1, le=10_000_000, description=(
        "the WAL the primary writes per hour at its busiest (MB), as you know it: with "
        "restore.rto_seconds, validate checks that the snapshot schedule can meet the RTO"))


CRON_FIELDS = [  # (name, low, high, names)
    ("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                      "nov", "dec")),
    ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
]


def _cron_schedule(value: str) -> str:
    """The five time fields of a crontab line, checked as cron checks them."""
    fields = value.split()
    if len(fields) != 5:
        raise ValueError(f"a cron schedule has 5 fields (minute hour day month weekday), "
                         f"got {len(fields)}")
    for text, (name, low, high, names) in zip(fields, CRON_FIELDS):
        for item in text.split(","):
            base, _, step = item.partition("/")
            if step and not (step.isdigit() and int(step) > 0):
                raise ValueError(f"{name}: bad step in {item!r}")
            if base == "*":
                continue
            ends = base.split("-")
            if len(ends) > 2 or not all(ends):
                raise ValueError(f"{name}: {item!r} is not a number, range or *")
            numbers = []
            for end in ends:
                if end.isdigit():
                    numbers.append(int(end))
                elif end.lower() in names and len(ends) == 1:
                    numbers.append(low)
                else:
                    raise ValueError(f"{name}: {end!r} is not allowed")
            if any(n < low or n > high for n in numbers):
                raise ValueError(f"{name}: {item!r} is outside {low}-{high}")
            if len(numbers) == 2 and numbers[0] > numbers[1]:
                raise ValueError(f"{name}: range {item!r} runs backwards")
    return " ".join(fields)


CronSchedule = Annotated[str, StringConstraints(max_length=200), AfterValidator(_cron_schedule)]
MailAddress = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._%+@-]{0,254}$")]
TimeZoneName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")]
SnapshotPrefix = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.:-]{0,30}$")]


class Keep(Strict):
    """How many snapshots to keep per period: the newest of each of the last N hours, days,
    ISO weeks, months, years that have one. The newest snapshot is always kept."""

    hourly: int = Field(default=0, ge=0, le=100000)
    daily: int = Field(default=7, ge=0, le=100000)
    weekly: int = Field(default=4, ge=0, le=100000)
    monthly: int = Field(default=6, ge=0, le=100000)
    yearly: int = Field(default=0, ge=0, le=100000)


class Snapshots(Strict):
    prefix: SnapshotPrefix = "pitr-"
    schedule: CronSchedule = "1 8 * * *"  # the runbook's: daily at 08:01
    keep: Keep = Keep()
    # run before each snapshot (e.g. a CHECKPOINT); its failure stops the snapshot
    pre_hook: Optional[FreeText] = None
    cron_user: OsUserName = "root"
    mailto: MailAddress = "root"
    time_zone: TimeZoneName = "UTC"  # of the schedule; snapshot names are always UTC


class Restore(Strict):
    port: Optional[Port] = None  # default: the standby's port + 1000
    dataset_parent: Optional[DatasetName] = None  # default: <pool>/restore
    mountpoint_root: AbsPath = "/pg_restore"
    timeout_seconds: int = Field(default=3600, ge=10)
    rto_seconds: Optional[int] = Field(default=None, ge=10, description=(
        "recovery time objective: the monitor's estimate of a restore to now (WAL since the "
        "newest snapshot at the drills' replay rate, plus their fixed costs) is CRITICAL above "
        "it and WARNING above three quarters of it; validate refuses a snapshot schedule that "
        "cannot meet it at archive.wal_mb_per_hour"))
    replay_mb_per_second: int = Field(default=20, ge=1, le=100_000, description=(
        "a conservative WAL replay rate (MB/s) for validate's RTO check, and the monitor's "
        "until a drill has measured one"))


class Drill(Strict):
    """A scheduled restore drill: restore.sh to a recent time under the name `drill`, on a free
    port, a sanity query, the result recorded, the clone always removed. A backup never
    restored is not known to be a backup."""

    enabled: bool = True
    schedule: CronSchedule = Field(default="17 5 * * 0", description=(
        "cron schedule of the drill (default: weekly, Sundays 05:17)"))
    time_zone: TimeZoneName = "UTC"  # of the schedule
    mailto: MailAddress = "root"
    target_lag_minutes: int = Field(default=30, ge=1, le=10080, description=(
        "the drill restores to this many minutes before its start: WAL up to there must be "
        "archived (keep it above archive_timeout)"))
    port: Optional[Port] = Field(default=None, description=(
        "first port tried for the drill's server (default: the restore port + 1); the next "
        "free one of ten is taken"))
    sanity_query: FreeText = Field(default="select count(*) from pg_class", description=(
        "run on the restored server; its failure fails the drill"))
    timeout_minutes: int = Field(default=60, ge=1, description=(
        "the drill fails when the restore is not open by then"))
    state_dir: AbsPath = Field(default="/var/lib/pitr-bundle", description=(
        "where drill-<cluster>.state (last result) and drill-<cluster>.log (history) live; "
        "the host monitor reads the state file"))


class ClusterMonitor(Strict):
    """Nagios thresholds; the runbook's: archive 20 min, restore (pg_wal) 10 min."""

    archive_warn_minutes: int = Field(default=20, ge=1, le=1440)
    # at most a day: the monitor reads only the newest UTC day folders of the archive
    archive_crit_minutes: int = Field(default=60, ge=1, le=1440)
    restore_warn_minutes: int = Field(default=10, ge=1)
    restore_crit_minutes: int = Field(default=30, ge=1)
    snapshot_warn_hours: int = Field(default=26, ge=1)
    snapshot_crit_hours: int = Field(default=50, ge=1)
    drill_max_age_days: int = Field(default=8, ge=1, description=(
        "CRITICAL when no restore drill succeeded within this many days (a weekly drill and "
        "a day to spare), or when the last drill failed"))
    # the primary's own check (primary/check-primary.sh)
    primary_wal_warn_mb: int = Field(default=4096, ge=1, description=(
        "WARNING when the primary's pg_wal (pg_xlog) folder holds this many MB"))
    primary_wal_crit_mb: int = Field(default=16384, ge=1, description=(
        "CRITICAL when the primary's WAL folder holds this many MB"))
    slot_retained_warn_mb: int = Field(default=2048, ge=1, description=(
        "WARNING when the replication slot keeps this many MB of WAL on the primary"))
    slot_retained_crit_mb: int = Field(default=8192, ge=1, description=(
        "CRITICAL when the replication slot keeps this many MB of WAL on the primary"))

    @model_validator(mode="after")
    def _warn_below_crit(self):
        for name in ("archive_{}_minutes", "restore_{}_minutes", "snapshot_{}_hours",
                     "primary_wal_{}_mb", "slot_retained_{}_mb"):
            if getattr(self, name.format("warn")) > getattr(self, name.format("crit")):
                raise ValueError(f"{name.format('warn')} is above {name.format('crit')}")
        return self


class ClusterSpec(Strict):
    name: ClusterName
    host: HostName
    os_user: Optional[OsUserName] = None  # default: the cluster's name
    dataset: Optional[DatasetName] = None  # default: <pool>/<name>
    mountpoint: Optional[AbsPath] = None  # default: /<name>
    properties: ZfsProperties = {}
    home: Optional[AbsPath] = None  # default: /home/<os_user>
    port: Port
    postgres: Postgres
    primary: Primary
    replication: Replication = Replication()
    standby: Standby = Standby()
    archive: Archive = Archive()
    snapshots: Snapshots = Snapshots()
    restore: Restore = Restore()
    monitor: ClusterMonitor = ClusterMonitor()
    drill: Drill = Drill()

    @property
    def user(self) -> str:
        return self.os_user or self.name

    @property
    def home_dir(self) -> str:
        return self.home or f"/home/{self.user}"

    @property
    def archive_mount(self) -> str:
        """Where the primary mounts this cluster's archive export."""
        return self.primary.archive_mount or f"/pgarch/{self.name}"

    @property
    def archive_helper(self) -> str:
        """The archive_command helper's path on the primary."""
        return self.primary.archive_script or f"/usr/local/sbin/pitr-archive-wal-{self.name}"

    @property
    def primary_unit(self) -> str:
        """The primary's PostgreSQL systemd unit (see Primary.systemd_unit)."""
        if self.primary.systemd_unit:
            return self.primary.systemd_unit
        debian = re.fullmatch(r"/var/lib/postgresql/([0-9.]+)/([^/]+)(/.*)?",
                              self.primary.data_dir or "")
        if debian:
            return f"postgresql@{debian.group(1)}-{debian.group(2)}.service"
        return f"postgresql-{self.postgres.major_text}.service"

    @property
    def archive_clients(self) -> list[str]:
        seen: list[str] = []
        for address in self.primary.nodes + list(self.archive.extra_clients):
            if address not in seen:
                seen.append(address)
        return seen


MODELS: dict[str, type[Strict]] = {"host": HostSpec, "cluster": ClusterSpec}

SpecModel = Union[HostSpec, ClusterSpec]
