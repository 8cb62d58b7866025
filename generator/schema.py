"""The spec schema: typed models with unknown keys forbidden.

Every string that reaches a script is either held to a safe pattern here, or is quoted for its
destination by the templates. Patterns are deliberately narrow: names of pools, datasets,
users and paths never need shell metacharacters.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal, Optional, Union

from generator import pgversions as pv
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field,
                      StringConstraints, model_validator)

# --- safe string types -----------------------------------------------------------------------

# what each pattern allows, in the words validate's messages give instead of the regex
PATTERN_WORDS: dict[str, str] = {}


def pattern_of(pattern: str, words: str, **limits) -> StringConstraints:
    """A string held to `pattern`, which validate's messages describe as `words`."""
    if PATTERN_WORDS.setdefault(pattern, words) != words:
        raise ValueError(f"pattern {pattern} is described twice, differently")
    return StringConstraints(pattern=pattern, **limits)


HostName = Annotated[str, pattern_of(
    r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
    "a host name: lower case letters, digits and -, at most 63, not starting or ending with -")]
# cluster and OS user names: what useradd accepts everywhere, and safe in paths and shell
ClusterName = Annotated[str, pattern_of(
    r"^[a-z_][a-z0-9_]{0,30}$",
    "lower case letters, digits and _, starting with a letter or _, at most 31 characters")]
OsUserName = Annotated[str, pattern_of(
    r"^[a-z_][a-z0-9_-]{0,30}$",
    "an OS user name: lower case letters, digits, _ and -, starting with a letter or _, at "
    "most 31 characters")]
PoolName = Annotated[str, pattern_of(
    r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$",
    "a pool name: letters, digits and _ . : -, starting with a letter, at most 64 characters")]
DatasetName = Annotated[str, pattern_of(
    r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}(/[A-Za-z0-9][A-Za-z0-9_.:-]{0,63})+$",
    "a dataset inside its pool, such as zp1/pg_arch: names of letters, digits and _ . : - (at "
    "most 64 each) joined by /")]
ZfsPropertyName = Annotated[str, pattern_of(
    r"^[a-z][a-z0-9_.:-]{0,63}$",
    "a ZFS property name: lower case letters, digits and _ . : -, starting with a letter")]


def _no_dot_segments(path: str) -> str:
    if any(part in (".", "..") for part in path.split("/")):
        raise ValueError("must not contain '.' or '..' segments")
    if len(path) > 1 and path.endswith("/"):
        raise ValueError("must not end with '/'")
    return path


AbsPath = Annotated[str, pattern_of(
    r"^/[A-Za-z0-9._+@:/-]{0,4000}$",
    "an absolute path (starting with /) of letters, digits and . _ + @ : - / only: no spaces, "
    "quotes or other shell characters"), AfterValidator(_no_dot_segments)]


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
                             pattern_of(r"^[A-Za-z0-9_.:,+=/@-]{1,1024}$",
    "a ZFS property value of letters, digits and _ . : , + = / @ - (no spaces)")]
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


def _number_text(value):
    """A YAML number where text is wanted: its text (a size without its unit then fails the
    pattern with the number shown)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value


# a PostgreSQL size setting as postgresql.conf takes it: "50GB", "512MB"
PgSize = Annotated[str, BeforeValidator(_number_text),
                   pattern_of(r"^[1-9][0-9]{0,8}(kB|MB|GB|TB)$",
                              "a size as postgresql.conf writes it: a whole number and its unit "
                              "kB, MB, GB or TB, such as 512MB")]
SIZE_UNITS = {"kB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def size_bytes(size: str) -> int:
    """'16MB' -> 16777216 (PostgreSQL's units are powers of 1024)."""
    return int(size[:-2]) * SIZE_UNITS[size[-2:]]


# a PostgreSQL release as `SHOW server_version` begins: major.minor from 10 on (16.4),
# major.minor.patch before (9.0.17); which majors are known is validate's check
FULL_VERSION = r"^([1-9][0-9]\.(0|[1-9][0-9]{0,2})|[1-9]\.[0-9]\.(0|[1-9][0-9]{0,2}))$"


def _full_version(value):
    """The primary's exact release, as text. A YAML number is refused, never turned back into
    text: unquoted, `16.10` reads as 16.1 and `9.0` as 9.0 (a float), so the text is lost."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(f"{value!r} is a number to YAML, not the text of a version: quote the "
                         'exact release (version: "16.10"; unquoted, YAML reads 16.10 as the '
                         "number 16.1)")
    if not isinstance(value, str):
        raise ValueError('must be the text of a version, such as "16.4" or "9.0.17"')
    if not re.fullmatch(FULL_VERSION, value):
        shown = repr(value) if len(value) <= 40 else repr(value[:37] + "...")
        raise ValueError(
            f"{shown} is not a full version: write the primary's exact release, such as "
            '"16.4" (10 and later: major.minor) or "9.0.17" (before 10: major.minor.patch), the '
            "number `SHOW server_version` begins with there; the standby's build compiles that "
            "release and 35-check-binaries.sh compares installed binaries with it")
    return value


# the pattern first: so the JSON Schema carries it (a BeforeValidator hides what it wraps)
PgVersion = Annotated[str, pattern_of(FULL_VERSION, 'a full release, such as "16.4" or "9.0.17"'),
                      BeforeValidator(_full_version)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- host spec -------------------------------------------------------------------------------

DEFAULT_ROOT_PROPERTIES = {"compression": "lz4", "atime": "off", "canmount": "off",
                           "dedup": "off"}

# the archive dataset: root on every primary writes into it over NFS; nothing in it is ever
# run, and no device or setuid file belongs there
DEFAULT_ARCHIVE_PROPERTIES = {"exec": "off", "setuid": "off", "devices": "off"}

MIN_DISKS = {"raidz1": 3, "raidz2": 4, "raidz3": 5, "mirror": 2}


class Vdev(Strict):
    type: Literal["raidz1", "raidz2", "raidz3", "mirror"] = Field(description=(
        "the vdev's redundancy: raidz1, raidz2 or raidz3 (survives 1, 2 or 3 failed disks; at "
        "least 3, 4 or 5 disks) or mirror (at least 2)"))
    disks: list[AbsPath] = Field(description=(
        "the vdev's disks: /dev/disk/by-id/ paths (other paths only with pool.device_paths: any)"))

    @model_validator(mode="after")
    def _enough_disks(self):
        needed = MIN_DISKS[self.type]
        if len(self.disks) < needed:
            raise ValueError(f"a {self.type} vdev needs at least {needed} disks, "
                             f"got {len(self.disks)}")
        return self


class LogDevices(Strict):
    type: Literal["single", "mirror"] = Field(default="mirror", description=(
        "mirror (default): the devices form one mirrored log vdev (what a JBOD needs, at least 2 "
        "devices); single: each device is a log vdev of its own (behind hardware RAID, as in the "
        "runbook)"))
    devices: list[AbsPath] = Field(min_length=1, description=(
        "the separate intent log (SLOG) devices, /dev/disk/by-id/ paths: at least one"))

    @model_validator(mode="after")
    def _mirror_needs_two(self):
        if self.type == "mirror" and len(self.devices) < 2:
            raise ValueError("a mirrored log needs at least 2 devices")
        return self


class Pool(Strict):
    name: PoolName = Field(description=(
        "the ZFS pool's name, e.g. zp1 (zpool create NAME); every dataset of the specs lives in "
        "it"))
    ashift: int = Field(default=12, ge=9, le=16, description=(
        "the pool's sector size as a power of two (zpool create -o ashift, 9 to 16): 12 (default) "
        "is 4 KiB, right for current disks; it cannot change after creation"))
    vdevs: list[Vdev] = Field(min_length=1, description=(
        "the pool's data vdevs, at least one; ZFS stripes the data across them"))
    log: Optional[LogDevices] = Field(default=None, description=(
        "separate intent log devices (zpool create ... log), which speed up synchronous writes "
        "such as the NFS archive's; default: none"))
    cache: list[AbsPath] = Field(default=[], description=(
        "L2ARC read cache devices (zpool create ... cache), /dev/disk/by-id/ paths; default: none"))
    spares: list[AbsPath] = Field(default=[], description=(
        "hot spare disks (zpool create ... spare), /dev/disk/by-id/ paths; default: none"))
    device_paths: Literal["by-id", "any"] = Field(default="by-id", description=(
        "by-id (default): every device must be a /dev/disk/by-id/ path, since sdX names move "
        "between boots; any: files and loop devices too, for test rigs only"))
    properties: ZfsProperties = Field(default={}, description=(
        "properties of the pool's root dataset, inherited by every dataset (zpool create -O), "
        "e.g. {compression: zstd}: they override the defaults compression=lz4, atime=off, "
        "canmount=off, dedup=off"))
    pool_options: ZfsProperties = Field(default={}, description=(
        "pool properties besides ashift (zpool create -o), e.g. {cachefile: none} for a test rig; "
        "default: none"))
    mountpoint: Optional[AbsPath] = Field(default=None, description=(
        "where the pool's root dataset would mount (zpool create -m); with canmount=off (the "
        "default) it never mounts. Default: ZFS's own, /<pool name>"))

    @property
    def root_properties(self) -> dict[str, str]:
        return {**DEFAULT_ROOT_PROPERTIES, **self.properties}

    @property
    def all_devices(self) -> list[str]:
        devices = [d for vdev in self.vdevs for d in vdev.disks]
        devices += self.log.devices if self.log else []
        return devices + list(self.cache) + list(self.spares)


class SharedDataset(Strict):
    name: DatasetName = Field(description=(
        "the dataset's name, inside the pool (e.g. zp1/pg_home); created by host/20-datasets.sh"))
    mountpoint: AbsPath = Field(description=(
        "where the dataset mounts, e.g. /pg_home"))
    properties: ZfsProperties = Field(default={}, description=(
        "ZFS properties set on the dataset (zfs create -o), e.g. {recordsize: 1M}; default: none, "
        "it inherits the pool root's"))


class SharedDatasets(Strict):
    pg_home: SharedDataset = Field(description=(
        "PostgreSQL builds, one folder per cluster (<mountpoint>/<cluster>/pgsql<version>, the "
        "source tarballs in <mountpoint>/<cluster>/soft_bak)"))
    pg_arch: SharedDataset = Field(description=(
        "the WAL archives, one folder per cluster, each exported over NFS to its primary and HA "
        "partner; made with exec=off, setuid=off, devices=off (root on every primary writes "
        "into it) unless its properties say otherwise"))
    pg_log: SharedDataset = Field(description=(
        "the standbys' server logs, one folder per cluster"))


class NfsPorts(Strict):
    """Fixed NFS helper ports (the runbook's values) so firewalls and remounts keep working."""

    rquotad: SystemPort = Field(default=875, description=(
        "port of rpc.rquotad, the remote quota server (default 875)"))
    lockd_tcp: SystemPort = Field(default=32803, description=(
        "TCP port of the NFS lock manager (lockd) (default 32803)"))
    lockd_udp: SystemPort = Field(default=32769, description=(
        "UDP port of the NFS lock manager (lockd) (default 32769)"))
    mountd: SystemPort = Field(default=892, description=(
        "port of rpc.mountd, which answers the primaries' mount requests (default 892)"))
    statd: SystemPort = Field(default=662, description=(
        "port of rpc.statd, which recovers NFS locks after a reboot (default 662)"))
    statd_outgoing: SystemPort = Field(default=2020, description=(
        "port rpc.statd sends its reboot notifications from (default 2020)"))
    rdma: SystemPort = Field(default=20049, description=(
        "port of NFS over RDMA (nfsd) (default 20049)"))


ExportOptions = Annotated[str, pattern_of(
    r"^[a-z_]+(=[A-Za-z0-9_:/.-]+)?(,[a-z_]+(=[A-Za-z0-9_:/.-]+)?)*$",
    "export options as exports(5) writes them, joined by commas without spaces: words of lower "
    "case letters and _, each with an optional =value of letters, digits and _ : / . -")]


class Nfs(Strict):
    exports_file: AbsPath = Field(default="/etc/exports", description=(
        "the exports file host/40-nfs-exports.sh writes the archive exports into, between its own "
        "marker lines (default /etc/exports)"))
    options: ExportOptions = Field(default="rw,no_root_squash,sync", description=(
        "export options of every client, as exports(5) takes them (default "
        "rw,no_root_squash,sync: the primaries' archive helper writes as root, and a WAL file is "
        "on disk before it reports success)"))
    ports: NfsPorts = Field(default=NfsPorts(), description=(
        "fixed ports of the NFS helper daemons (default: the runbook's), so that firewalls can "
        "open them and remounts keep working"))
    ports_format: Literal["nfs.conf", "sysconfig"] = Field(default="nfs.conf", description=(
        "nfs.conf (default): an nfs.conf drop-in, read by nfs-utils 2 and later; sysconfig: the "
        "/etc/sysconfig/nfs variables of RHEL/CentOS 6 and 7"))
    ports_file: AbsPath = Field(default="/etc/nfs.conf.d/pitr-bundle.conf", description=(
        "the file the ports are written to (default /etc/nfs.conf.d/pitr-bundle.conf; give "
        "/etc/sysconfig/nfs with ports_format: sysconfig)"))


class HostMonitor(Strict):
    user: OsUserName = Field(default="nagios", description=(
        "the monitoring system's OS user, allowed to run host/monitor.sh as root through sudo "
        "(PGDATA is 0700); default nagios"))
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
    # off by default: a host without node_exporter gets no cron file writing into nowhere
    prometheus_textfile_dir: Optional[AbsPath] = Field(default=None, description=(
        "node_exporter's textfile collector folder (its --collector.textfile.directory; "
        "Debian's prometheus-node-exporter reads /var/lib/prometheus/node-exporter): set, "
        "81-install-status.sh installs a cron file that runs `pitr-status --prometheus` every "
        "5 minutes, writing the pitr_bundle_* metrics (restorable range, snapshots, archive, "
        "replay, last drill per cluster) there as pitr_bundle.prom, atomically; default off "
        "(pitr-status --prometheus-dir DIR writes them anywhere by hand); not inside a "
        "dataset of this host"))

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
InterfaceName = Annotated[str, pattern_of(
    r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$",
    "a network interface name: letters, digits and _ . -, starting with a letter or digit, at "
    "most 15 characters")]


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
    name: HostName = Field(description=(
        "the backup host's name: the bundle is out/<name>/ and out/<name>.tar.gz, and cluster "
        "specs name it in their host"))
    address: Address = Field(description=(
        "the backup host's own IP address or host name (Ansible connects to it): the primaries' "
        "pg_hba.conf allows replication from it, unless virtual_ip is set"))
    virtual_ip: Annotated[Optional[VirtualIp], BeforeValidator(
        _virtual_ip_form, json_schema_input_type=Union[Address, VirtualIp, None])] = Field(
        default=None, description=(
            "the address primaries see the backup host connect from, instead of address: "
            "`virtual_ip: 192.168.1.199` when it is managed outside the bundle, or "
            "`virtual_ip: {address: 192.168.1.199, interface: bond0, prefix: 24}` to have "
            "host/15-vip.sh bring it up and route connections to the primaries from it"))
    pool: Pool = Field(description=(
        "the ZFS pool host/10-pool.sh creates: it holds every standby, its snapshots and the WAL "
        "archive"))
    datasets: SharedDatasets = Field(description=(
        "the shared datasets: PostgreSQL builds (pg_home), WAL archives (pg_arch), the standbys' "
        "logs (pg_log)"))
    nfs: Nfs = Field(default=Nfs(), description=(
        "how the WAL archives are exported to the primaries over NFS (default: /etc/exports, "
        "rw,no_root_squash,sync, the runbook's fixed ports)"))
    monitor: HostMonitor = Field(default=HostMonitor(), description=(
        "thresholds of host/monitor.sh, the Nagios check of the pool and of every cluster on the "
        "host (default: pool 80/90 %, archive share 50/70 %)"))
    review: Review = Field(default=Review(), description=(
        "signed reviews the host insists on before any script of the bundle runs (default: none "
        "required)"))
    encryption: Optional["Encryption"] = Field(default=None, description=(
        "ZFS native encryption (aes-256-gcm) of every cluster's dataset and WAL archive "
        "dataset, each its own encryption root, its key never in a spec or a bundle: "
        "`encryption: {key: file}` reads a 32-byte key file the operator places per cluster, "
        "`{key: prompt}` asks for a passphrase. Default: none. ZFS cannot encrypt an existing "
        "dataset in place: host/20-datasets.sh refuses one that is not encrypted"))
    replica_of: Optional["ReplicaOf"] = Field(default=None, description=(
        "this host is a replica: it keeps a second copy of another backup host's clusters "
        "(their datasets' snapshots and WAL archive datasets), pulled with zfs send/receive "
        "over ssh (docs/replicas.md). Default: none, the host backs up clusters of its own"))
    scrub: Scrub = Field(default_factory=lambda: Scrub(), description=(
        "the pool's scheduled `zpool scrub` (default: monthly, the 1st at 03:00 UTC) and the "
        "monitor's check of its age and findings"))

    @property
    def replication_source(self) -> str:
        return self.virtual_ip.address if self.virtual_ip else self.address

    @property
    def managed_vip(self) -> Optional[VirtualIp]:
        """The virtual IP host/15-vip.sh brings up, if the spec asks for one."""
        return self.virtual_ip if self.virtual_ip and self.virtual_ip.interface else None


# --- cluster spec ----------------------------------------------------------------------------


FileName = Annotated[str, pattern_of(
    r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,200}$",
    "a file name without a folder: letters, digits and . _ + -, starting with a letter or "
    "digit")]
Sha256 = Annotated[str, pattern_of(
    r"^[0-9a-f]{64}$",
    "a sha256 as sha256sum prints it: 64 hex digits, lower case")]
RoleName = Annotated[str, pattern_of(
    r"^[a-z_][a-z0-9_]{0,62}$",
    "lower case letters, digits and _, starting with a letter or _, at most 63 characters")]
SettingName = Annotated[str, pattern_of(
    r"^[a-z][a-z0-9_.]{0,62}$",
    "a setting name: lower case letters, digits, _ and ., starting with a letter")]
# free text that reaches scripts only through the shell-quoting filter: no NUL, bounded
FreeText = Annotated[str, pattern_of(r"^[^\x00]*$", "text without NUL characters",
                                     max_length=4096)]


SettingValue = Annotated[str, BeforeValidator(_yaml_on_off),
                         pattern_of(r"^[^\x00\n\r]*$", "one line of text (no line breaks or NUL)",
                                    max_length=1024)]


class Tarball(Strict):
    """A file the operator puts in /pg_home/<cluster>/soft_bak; checked before use."""

    file: FileName = Field(description=(
        "the tarball's file name in /pg_home/<cluster>/soft_bak, e.g. postgresql-16.4.tar.bz2 "
        "(the host has no network: the operator brings it)"))
    sha256: Sha256 = Field(description=(
        "the tarball's sha256, 64 hex digits: the build refuses a file that differs"))


class Extension(Strict):
    name: RoleName = Field(description=(
        "the extension's name: its library <name>.so (or the library its control file names) "
        "must be in the standby's PostgreSQL"))
    # a source build builds it from this tarball (PGXS); installed binaries need neither
    file: Optional[FileName] = Field(default=None, description=(
        "its source tarball in /pg_home/<cluster>/soft_bak (source builds only)"))
    sha256: Optional[Sha256] = Field(default=None, description=(
        "the tarball's sha256 (source builds only)"))
    make_args: list[FreeText] = Field(default=[], description=(
        "extra arguments of the extension's make (PGXS) runs, e.g. a make variable (source builds "
        "only); default: none"))


class Postgres(Strict):
    version: PgVersion = Field(description=(
        "the primary's exact PostgreSQL release, quoted, the number `SHOW server_version` begins "
        "with: \"16.4\" (10 and later: major.minor) or \"9.0.17\" (before 10: "
        "major.minor.patch). The standby is built from that release, or installed binaries are "
        "checked against it; majors 9.0 to 18 are known"))
    # installed PostgreSQL (distribution or PGDG packages) instead of a build from source
    binaries: Optional[AbsPath] = Field(default=None, description=(
        "the bin folder of an installed PostgreSQL of the primary's version, e.g. "
        "/usr/lib/postgresql/15/bin (Debian, Ubuntu) or /usr/pgsql-15/bin (PGDG on RHEL; "
        "`pitr-bundle import-pg-config` writes it for a packaged primary): then nothing is "
        "built; 35-check-binaries.sh checks that it is the primary's major, "
        "in the primary's minor release or a newer one (an older minor is warned about: "
        "PostgreSQL's advice is to update standbys first), and that the extensions' "
        "libraries are there, and every "
        "script uses its parent folder as PGHOME. Give version with its minor (15.18); leave "
        "configure, source and the extensions' tarballs out"))
    configure: list[FreeText] = Field(default=[], description=(
        "the primary's ./configure options (`pitr-bundle import-pg-config` writes them for a "
        "build from source, or with --configure for a packaged one), kept "
        "byte for byte; only --prefix moves to /pg_home/<cluster>/pgsql<version>. Source builds "
        "only; default: none"))
    source: Optional[Tarball] = Field(default=None, description=(
        "the PostgreSQL source tarball of that version in /pg_home/<cluster>/soft_bak: "
        "35-build.sh refuses to build without it. Source builds only"))
    contrib: bool = Field(default=True, description=(
        "also build and install contrib (default: true; source builds only)"))
    extensions: list[Extension] = Field(default=[], description=(
        "the primary's extensions the standby needs: built from their tarballs (source builds) or "
        "checked for in the installed binaries; default: none"))
    make_jobs: int = Field(default=2, ge=1, le=256, description=(
        "parallel jobs of the build's make (make -j, default 2)"))

    @property
    def major(self) -> int:
        """10 for 10.x; 90 for 9.0.x (the pre-10 numbering has two-part majors)."""
        parts = self.version.split(".")
        return int(parts[0]) * 10 + int(parts[1]) if int(parts[0]) < 10 else int(parts[0])

    @property
    def major_text(self) -> str:
        parts = self.version.split(".")
        return ".".join(parts[:2]) if int(parts[0]) < 10 else parts[0]


# a systemd unit name, as `systemctl` takes it (postgresql@15-main.service)
UnitName = Annotated[str, pattern_of(
    r"^[A-Za-z0-9_.:@-]{1,200}\.(service|target)$",
    "a systemd unit name ending in .service or .target, such as postgresql@15-main.service")]

# what a slot may hold on the primary when the spec does not say (13+): the warning asks for
# a value below the free space of the primary's WAL disk, which only its owner knows
DEFAULT_MAX_SLOT_WAL_KEEP_SIZE = "10GB"


class Primary(Strict):
    address: Address = Field(description=(
        "the primary's IP address or host name: the standby streams from it, and it mounts the "
        "archive export"))
    port: SystemPort = Field(default=5432, description=(
        "the primary's PostgreSQL port (default 5432)"))
    ha_partner: Optional[Address] = Field(default=None, description=(
        "the server that takes over from the primary (IP address or host name): it gets the same "
        "archive mount, helper and pg_hba.conf lines; default: none"))
    data_dir: Optional[AbsPath] = Field(default=None, description=(
        "the primary's data directory: the 9.0 base backup copies it (rsync over ssh; needed "
        "there), and Debian's layout names the default systemd_unit; default: none"))
    os_user: OsUserName = Field(default="postgres", description=(
        "the primary's PostgreSQL OS user (default postgres): the primary's scripts run psql as "
        "it on the local socket, and the 9.0 base backup logs in over ssh as it"))
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
    archive_via_sudo: bool = Field(default=True, description=(
        "archive_command runs the helper through sudo (default true, the runbook's way: the "
        "export belongs to root, no_root_squash); false when the primary's OS user may write the "
        "archive itself"))
    archive_requires_mount: bool = Field(default=True, description=(
        "the helper refuses to archive unless archive_mount is a mount point (default true), so "
        "WAL never lands on the primary's own disk; false only for test rigs whose archive is a "
        "local folder"))
    mount_options: Annotated[str, pattern_of(
        r"^[a-z0-9_]+(=[A-Za-z0-9_.:/-]+)?(,[a-z0-9_]+(=[A-Za-z0-9_.:/-]+)?)*$",
        "mount options joined by commas without spaces: words of lower case letters, digits "
        "and _, each with an optional =value of letters, digits and _ . : / -")] = Field(
        default="rw,hard,nfsvers=3", description=(
            "NFS mount options of the archive mount on the primary (default rw,hard,nfsvers=3: "
            "hard, because each access of the archive helper is bounded by "
            "archive_call_timeout and killed past it; soft,timeo=,retrans= also end a call "
            "when the server is gone, at the price of failed calls when it is only slow; "
            "docs/wal-transport.md); nosuid,nodev,noexec are always added"))
    # each archive call spends at most this long on the archive mount (SIGKILL past it), so a
    # dead backup host never blocks the archiver: a fast shutdown waits for the archiver's
    # cycle under way (up to 3 tries of a file, 1 s apart) and then its last cycle (3 more),
    # 6 calls + 4 s: the default 8 s keeps that near 52 s (validate warns above 9 s)
    archive_call_timeout: int = Field(default=8, ge=1, le=3600, description=(
        "seconds: the most one archive call spends on the archive mount (default 8); past "
        "it the access is killed (SIGKILL) and the call fails, so PostgreSQL retries. A fast "
        "shutdown may wait about 6 times this + 4 s for the archiver when the backup host is "
        "gone"))
    settings: dict[SettingName, SettingValue] = Field(default={}, description=(
        "the primary's values of the settings a hot standby must not undercut (max_connections, "
        "max_worker_processes, max_prepared_transactions, max_locks_per_transaction, "
        "max_wal_senders): validate refuses standby.settings below them; default: none"))
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


class ReplicationTls(Strict):
    """TLS for the standby's replication connection (and the base backup's): the primary's
    pg_hba.conf lines become hostssl, the standby's libpq gets sslmode and sslrootcert."""

    mode: Literal["require", "verify-ca", "verify-full"] = Field(description=(
        "libpq's sslmode of the standby and the base backup: require (encrypted, the server's "
        "certificate not checked), verify-ca (signed by ca_file's CA), verify-full (signed by "
        "it and naming the host connected to: the certificate must name primary.address and "
        "primary.ha_partner, as a subjectAltName or its CN; an IP address as an iPAddress "
        "subjectAltName is matched by libpq from PostgreSQL 15, before only as a DNS name or CN). "
        "The primary step refuses a primary whose ssl is off"))
    ca_file: Optional[AbsPath] = Field(default=None, description=(
        "on the backup host: the CA certificate that signed the primary's server certificate "
        "(a copy of the primary's CA certificate, readable by the cluster's OS user; libpq's "
        "sslrootcert), placed before the base backup and standby steps, which refuse without "
        "it. Needed by verify-ca and verify-full"))

    @model_validator(mode="after")
    def _ca_file_fits_mode(self):
        if self.mode != "require" and self.ca_file is None:
            raise ValueError(f"mode {self.mode} checks the server's certificate against a CA: "
                             "give ca_file (a copy of the primary's CA certificate on the "
                             "backup host)")
        if self.mode == "require" and self.ca_file is not None:
            raise ValueError("mode require does not check the server's certificate, yet "
                             "libpq would check it against ca_file: say verify-ca or "
                             "verify-full, or leave ca_file out")
        return self


class Replication(Strict):
    user: RoleName = Field(default="replicator", description=(
        "the role the standby replicates as (default replicator; 9.0 replicates as a superuser): "
        "the primary's pg_hba.conf lines name it; 45-apply-on-primary.sh creates it (LOGIN "
        "REPLICATION) when it is missing, or checks it, and the standby's .pgpass holds its "
        "password: both take it at run time from PITR_REPLICATION_PASSWORD or a prompt, never "
        "from a spec or the bundle"))
    slot: Optional[RoleName] = Field(default=None, description=(
        "a physical replication slot the standby streams through (PostgreSQL 9.4 and later): "
        "45-apply-on-primary.sh creates it on the primary when it is missing, so the primary "
        "keeps the WAL the standby has not received yet (drop the slot if the standby is "
        "given up)"))
    tls: Optional[ReplicationTls] = Field(default=None, description=(
        "TLS for replication: {mode: verify-full, ca_file: /etc/pitr-bundle/tls/<cluster>-ca.crt} "
        "(or mode require without a CA). The primary's pg_hba.conf lines become hostssl, the "
        "standby's primary_conninfo and the base backup get sslmode and sslrootcert, the "
        "primary step refuses a server whose ssl is off and check-primary.sh is CRITICAL while "
        "the backup standby does not stream over TLS. Default: none (host lines, libpq's "
        "default sslmode prefer)"))


class Standby(Strict):
    hot_standby: bool = Field(default=False, description=(
        "true: the standby answers read-only queries, but then max_connections and the like must "
        "be at least the primary's; false (default, the runbook's): it may run with less memory "
        "than the primary"))
    settings: dict[SettingName, SettingValue] = Field(default={
        "shared_buffers": "128MB", "max_connections": "100"}, description=(
        "postgresql.conf settings of the standby, over the bundle's own (port, logging, "
        "archive_mode off); default: {shared_buffers: 128MB, max_connections: 100}, which a map "
        "given here replaces whole"))


class Archive(Strict):
    # how WAL reaches the archive: the primary's archive_command over NFS (the runbook's way,
    # the only one before 9.5), or the backup standby archiving what it receives
    # (archive_mode = always, 9.5+) with no NFS, mount, sudo rule or helper on the primary
    method: Optional[Literal["nfs", "standby"]] = Field(default=None, description=(
        "how WAL reaches the archive: nfs (the primary's archive_command copies each file "
        "over an NFS mount of the backup host; the only way before 9.5) or standby (9.5+, "
        "needs replication.slot: the backup standby archives what it streams, archive_mode = "
        "always, into the same folders; the primary gets no NFS mount, sudo rule or helper). "
        "Default: standby from 9.5 when replication.slot is set, else nfs "
        "(docs/wal-transport.md)"))
    extra_clients: list[Address] = Field(default=[], description=(
        "further hosts (IP addresses or host names) allowed to mount the archive export besides "
        "the primary and its HA partner; default: none"))
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
MailAddress = Annotated[str, pattern_of(
    r"^[A-Za-z0-9._%+@-]{0,254}$",
    "a mail address or user name: letters, digits and . _ % + @ -")]
TimeZoneName = Annotated[str, pattern_of(
    r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$",
    "a time zone name, such as UTC or Europe/Berlin")]
SnapshotPrefix = Annotated[str, pattern_of(
    r"^[A-Za-z][A-Za-z0-9_.:-]{0,30}$",
    "letters, digits and _ . : -, starting with a letter, at most 31 characters")]


class Keep(Strict):
    """How many snapshots to keep per period: the newest of each of the last N hours, days,
    ISO weeks, months, years that have one. The newest snapshot is always kept."""

    hourly: int = Field(default=0, ge=0, le=100000, description=(
        "keep the newest snapshot of each of the last N hours that have one (default 0)"))
    daily: int = Field(default=7, ge=0, le=100000, description=(
        "keep the newest snapshot of each of the last N days that have one (default 7)"))
    weekly: int = Field(default=4, ge=0, le=100000, description=(
        "keep the newest snapshot of each of the last N ISO weeks that have one (default 4)"))
    monthly: int = Field(default=6, ge=0, le=100000, description=(
        "keep the newest snapshot of each of the last N months that have one (default 6)"))
    yearly: int = Field(default=0, ge=0, le=100000, description=(
        "keep the newest snapshot of each of the last N years that have one (default 0)"))


class Snapshots(Strict):
    prefix: SnapshotPrefix = Field(default="pitr-", description=(
        "snapshots are named <dataset>@<prefix><UTC time>, e.g. pitr-20261124T080100Z (default "
        "pitr-); the retention prunes only snapshots with this prefix"))
    schedule: CronSchedule = Field(default="1 8 * * *", description=(
        "cron schedule of snapshot.sh, five fields in time_zone (default 1 8 * * *: daily at "
        "08:01, the runbook's)"))
    keep: Keep = Field(default=Keep(), description=(
        "how many snapshots to keep per hour, day, ISO week, month and year (default: 7 daily, 4 "
        "weekly, 6 monthly); the newest is always kept"))
    archive_keep: int = Field(default=2, ge=1, le=1000, description=(
        "how many of the newest snapshots of the cluster's WAL archive dataset (taken with each "
        "snapshot of the cluster, in one zfs call) to keep (default 2); older ones are pruned "
        "whatever keep says, unless held or cloned: an archive snapshot keeps the WAL the WAL "
        "retention deletes, and the newest serve a replica as its incremental base"))
    pre_hook: Optional[FreeText] = Field(default=None, description=(
        "a shell command run before each snapshot (bash -c, with the standby's PGHOME, PGDATA, "
        "PGHOST and PGPORT set), e.g. a CHECKPOINT; its failure stops the snapshot. Default: none"))
    cron_user: OsUserName = Field(default="root", description=(
        "the user the snapshot cron entry runs as (default root)"))
    mailto: MailAddress = Field(default="root", description=(
        "where cron mails the snapshot job's output (MAILTO, default root)"))
    time_zone: TimeZoneName = Field(default="UTC", description=(
        "time zone of the schedule (cron's CRON_TZ, default UTC); snapshot names are always UTC"))


class Restore(Strict):
    port: Optional[Port] = Field(default=None, description=(
        "port of a restored server (default: the standby's port + 1000)"))
    dataset_parent: Optional[DatasetName] = Field(default=None, description=(
        "the dataset restore.sh clones snapshots under (default <pool>/restore)"))
    mountpoint_root: AbsPath = Field(default="/pg_restore", description=(
        "where restored clones mount, as <mountpoint_root>/<cluster>-<name> (default /pg_restore)"))
    timeout_seconds: int = Field(default=3600, ge=10, description=(
        "restore.sh fails when the restored server is not open after this many seconds (default "
        "3600)"))
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

    enabled: bool = Field(default=True, description=(
        "true (default): the bundle holds drill.sh and its cron installer, and host/monitor.sh "
        "checks the drills' results; false: no drill"))
    schedule: CronSchedule = Field(default="17 5 * * 0", description=(
        "cron schedule of the drill (default: weekly, Sundays 05:17)"))
    time_zone: TimeZoneName = Field(default="UTC", description=(
        "time zone of the schedule (cron's CRON_TZ, default UTC); the drill's times are UTC"))
    mailto: MailAddress = Field(default="root", description=(
        "where cron mails the drill's output (MAILTO, default root)"))
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

    archive_warn_minutes: int = Field(default=20, ge=1, le=1440, description=(
        "WARNING when the newest WAL file in the archive is this many minutes old (default 20, "
        "the runbook's); check-primary.sh warns when a WAL file has waited this long to be "
        "archived"))
    archive_crit_minutes: int = Field(default=60, ge=1, le=1440, description=(
        "CRITICAL at this age, in minutes (default 60; at most a day: the monitor reads only the "
        "newest UTC day folders)"))
    restore_warn_minutes: int = Field(default=10, ge=1, description=(
        "WARNING when the standby has received or restored no new WAL (the newest file in its "
        "pg_wal) for this many minutes (default 10)"))
    restore_crit_minutes: int = Field(default=30, ge=1, description=(
        "CRITICAL when the standby has had no new WAL for this many minutes (default 30)"))
    # unset: from snapshots.schedule (generator/model.py, snapshot_thresholds): a fixed age
    # fits one schedule only (26 h kept an hourly schedule that stopped yesterday OK)
    snapshot_warn_hours: Optional[int] = Field(default=None, ge=1, description=(
        "WARNING when the newest snapshot is this many hours old. Default: from "
        "snapshots.schedule, twice its longest wait between two runs plus 15 min (one run "
        "missed may be a reboot at the wrong minute; the next one missed too is a pattern), "
        "an hour more in a time zone with daylight saving; a daily schedule warns at 48 h 15 "
        "min, an hourly one at 2 h 15 min. Set it with snapshot_crit_hours, or neither"))
    snapshot_crit_hours: Optional[int] = Field(default=None, ge=1, description=(
        "CRITICAL when the newest snapshot is this many hours old. Default: the warning age "
        "plus the schedule's longest wait, and at least a day after the warning (a lapse that "
        "outlasted another run, and a day to act on the warning: daily 72 h 15 min, hourly "
        "26 h 15 min). Set it with snapshot_warn_hours, or neither"))
    # replay health (host/monitor.sh): WAL received but not replayed yet
    replay_lag_warn_mb: int = Field(default=512, ge=1, description=(
        "WARNING when the standby has received this many MB of WAL that it has not replayed "
        "(receive against replay position; with hot_standby off, counted in whole WAL "
        "segments from the WAL files and the startup process)"))
    replay_lag_crit_mb: int = Field(default=2048, ge=1, description=(
        "CRITICAL when this many MB of received WAL wait to be replayed"))
    replay_delay_warn_minutes: int = Field(default=15, ge=1, description=(
        "WARNING when received WAL waits to be replayed and the last replayed transaction "
        "committed on the primary this many minutes ago (hot standby 9.1+ only: the time is "
        "read with SQL)"))
    replay_delay_crit_minutes: int = Field(default=60, ge=1, description=(
        "CRITICAL when the last replayed transaction is this many minutes old while received "
        "WAL waits to be replayed"))
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
                     "primary_wal_{}_mb", "slot_retained_{}_mb", "replay_lag_{}_mb",
                     "replay_delay_{}_minutes"):
            warn, crit = getattr(self, name.format("warn")), getattr(self, name.format("crit"))
            if (warn is None) != (crit is None):
                raise ValueError(f"set both {name.format('warn')} and {name.format('crit')}, "
                                 "or neither (both then follow snapshots.schedule)")
            if warn is not None and warn > crit:
                raise ValueError(f"{name.format('warn')} is above {name.format('crit')}")
        return self


class ClusterSpec(Strict):
    name: ClusterName = Field(description=(
        "the cluster's name: its folder in the bundle (clusters/<name>/), and by default its OS "
        "user, dataset and mountpoint; lower case letters, digits and _"))
    host: HostName = Field(description=(
        "the name of the host spec whose backup host runs this cluster's standby"))
    os_user: Optional[OsUserName] = Field(default=None, description=(
        "the OS user that owns and runs the standby (default: the cluster's name)"))
    dataset: Optional[DatasetName] = Field(default=None, description=(
        "the standby's ZFS dataset, snapshotted on schedule (default <pool>/<name>)"))
    mountpoint: Optional[AbsPath] = Field(default=None, description=(
        "where the dataset mounts; PGDATA is <mountpoint>/pg_root (default /<name>)"))
    properties: ZfsProperties = Field(default={}, description=(
        "ZFS properties of the cluster's dataset (zfs create -o), e.g. {recordsize: 8k}; default: "
        "none, inherited from the pool root"))
    home: Optional[AbsPath] = Field(default=None, description=(
        "the OS user's home, which holds .bash_profile and .pgpass (default /home/<os_user>)"))
    port: Port = Field(description=(
        "the standby's port on the backup host, one per standby (1024-65535); restores default to "
        "port + 1000"))
    postgres: Postgres = Field(description=(
        "the PostgreSQL the standby runs: the primary's exact version, built from source with its "
        "configure options, or installed binaries"))
    primary: Primary = Field(description=(
        "the production server backed up: its address, port and HA partner, and how the bundle's "
        "primary/ files set up archiving there"))
    replication: Replication = Field(default=Replication(), description=(
        "how the standby streams from the primary: the role (default replicator) and an optional "
        "replication slot"))
    standby: Standby = Field(default=Standby(), description=(
        "the standby's own settings: hot standby (default off) and postgresql.conf values"))
    archive: Archive = Field(default=Archive(), description=(
        "the WAL archive: further NFS clients and the point-in-time window (default 7 days)"))
    snapshots: Snapshots = Field(default=Snapshots(), description=(
        "the snapshot schedule (default daily at 08:01 UTC) and how many to keep (default 7 "
        "daily, 4 weekly, 6 monthly)"))
    restore: Restore = Field(default=Restore(), description=(
        "restore.sh's port, clone dataset and mountpoints, and how long it waits for a restored "
        "server"))
    monitor: ClusterMonitor = Field(default=ClusterMonitor(), description=(
        "thresholds of this cluster's checks in host/monitor.sh and primary/check-primary.sh"))
    drill: Drill = Field(default=Drill(), description=(
        "the scheduled restore drill (default: on, weekly, Sundays 05:17 UTC)"))
    retired: bool = Field(default=False, description=(
        "the cluster is given up: its bundle holds only clusters/<name>/90-retire.sh (stops the "
        "standby, removes its cron files, installed scripts and monitor lines; keeps dataset "
        "and archive unless given --destroy-data --yes) and primary/45-remove-from-primary.sh "
        "(stops archiving, drops the slot, removes what the primary step installed); its port "
        "is free again, its name, OS user, dataset, mountpoint and primary stay claimed"))

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
    def archive_method(self) -> str:
        """nfs or standby: how WAL reaches the archive (see Archive.method). Unset, standby
        wherever it can work (9.5+ and a slot that keeps what the standby has not received):
        then no primary mounts the backup host or lets root write into it."""
        if self.archive.method:
            return self.archive.method
        if (self.replication.slot and pv.known(self.postgres.version)
                and pv.has("archive_mode always", self.postgres.version)):
            return "standby"
        return "nfs"

    @property
    def archive_clients(self) -> list[str]:
        seen: list[str] = []
        for address in self.primary.nodes + list(self.archive.extra_clients):
            if address not in seen:
                seen.append(address)
        return seen


class Scrub(Strict):
    """The pool's scrub: ZFS reads every block and checks it against its checksum, repairing
    from redundancy what it can. Silent corruption of old snapshots is found only so, before a
    restore needs them."""

    schedule: CronSchedule = Field(default="0 3 1 * *", description=(
        "cron schedule of `zpool scrub` of the pool, in time_zone (default 0 3 1 * *: monthly, "
        "the 1st at 03:00); host/monitor.sh warns when the last scrub finished more than 1.5 "
        "times the schedule's longest wait ago"))
    time_zone: TimeZoneName = Field(default="UTC", description=(
        "time zone of the schedule (cron's CRON_TZ, default UTC)"))
    mailto: MailAddress = Field(default="root", description=(
        "where cron mails the scrub job's output (MAILTO, default root)"))
    install_cron: bool = Field(default=True, description=(
        "true (default): host/80-install-monitor.sh installs /etc/cron.d/pitr-bundle-scrub; "
        "false: something else scrubs the pool on this schedule (Debian's zfsutils-linux "
        "scrubs every pool on the second Sunday of each month: a monthly schedule such as "
        "'24 0 1 * *' stands for it), and the monitor still checks the last scrub's age against "
        "the schedule"))


class Encryption(Strict):
    """ZFS native encryption of the clusters' datasets and WAL archives."""

    key: Literal["file", "prompt"] = Field(default="file", description=(
        "file (default): each cluster's key is a file of 32 random bytes, <key_dir>/<cluster>.key "
        "(root's, mode 0400), which the operator makes and keeps a copy of off the host before "
        "host/20-datasets.sh runs (keyformat raw); the datasets open by themselves at boot. "
        "prompt: a passphrase asked on the terminal when each dataset is made, and by `zfs "
        "load-key` after every boot (keyformat passphrase): nothing of the key is on the host"))
    key_dir: AbsPath = Field(default="/etc/pitr-bundle/keys", description=(
        "with key: file, the folder of the key files (default /etc/pitr-bundle/keys): on the "
        "host's own disk, not in a dataset of the pool they unlock"))


class ReplicaOf(Strict):
    """What a replica host copies, from where and how: it connects to the source as an
    unprivileged user whose ssh key can only run the source's send command (pull)."""

    host: HostName = Field(description=(
        "the source: the name of the backup host spec whose clusters this host copies"))
    address: Optional[Address] = Field(default=None, description=(
        "the address this host connects to over ssh (default: the source host spec's address)"))
    ssh_port: SystemPort = Field(default=22, description="the source's sshd port (default 22)")
    mode: Literal["pull"] = Field(default="pull", description=(
        "pull (the only mode built yet): this host connects to the source and pulls, so that no "
        "credential on the source can delete or overwrite this copy"))
    send_user: OsUserName = Field(default="pitr-send", description=(
        "the unprivileged user on the source this host logs in as; its ssh key is fixed to the "
        "source's send command (default pitr-send)"))
    send_privilege: Literal["delegation", "sudo"] = Field(default="delegation", description=(
        "how the source's send command runs zfs: delegation (default; OpenZFS `zfs allow` of "
        "send, snapshot, hold and release on the copied datasets to send_user) or sudo (a sudo "
        "rule lets send_user run the send command, and nothing else, as root: ZFS without "
        "delegation to users, such as zfs-fuse)"))
    clusters: list[ClusterName] = Field(default_factory=list, description=(
        "the source's clusters to copy (default: every cluster of the source that is not "
        "retired)"))
    root: Optional[DatasetName] = Field(default=None, description=(
        "the dataset under which the copies are received, never mounted (default "
        "<pool>/<source host>): zp1/pg168121 arrives as <root>/pg168121, its archive "
        "zp1/pg_arch/pg168121 as <root>/pg_arch/pg168121"))
    schedule: CronSchedule = Field(default="*/15 * * * *", description=(
        "cron schedule of host/replicate.sh in time_zone (default */15 * * * *): each run takes "
        "a snapshot of every copied archive on the source, so it bounds the age of the newest "
        "WAL here"))
    time_zone: TimeZoneName = Field(default="UTC", description=(
        "time zone of the schedule (cron's CRON_TZ, default UTC)"))
    mailto: MailAddress = Field(default="root", description=(
        "where cron mails the replication job's output (MAILTO, default root)"))
    keep: Keep = Field(default=Keep(hourly=24, daily=31, weekly=8, monthly=12), description=(
        "how many received snapshots of each cluster to keep here, per hour, day, ISO week, "
        "month and year (default 24 hourly, 31 daily, 8 weekly, 12 monthly), whatever the "
        "source keeps; the newest (the base of the next incremental send) is always kept"))
    lag_warn_minutes: int = Field(default=60, ge=1, le=525600, description=(
        "WARNING when the newest snapshot received here of a cluster's archive is older than "
        "this (minutes, default 60)"))
    lag_crit_minutes: int = Field(default=240, ge=1, le=525600, description=(
        "CRITICAL when it is older than this (minutes, default 240)"))

    @model_validator(mode="after")
    def _warn_below_crit(self):
        if self.lag_warn_minutes > self.lag_crit_minutes:
            raise ValueError("lag_warn_minutes is above lag_crit_minutes")
        return self


# HostSpec names Scrub, Encryption and ReplicaOf, which need the cron types defined after it
HostSpec.model_rebuild()

MODELS: dict[str, type[Strict]] = {"host": HostSpec, "cluster": ClusterSpec}

SpecModel = Union[HostSpec, ClusterSpec]
