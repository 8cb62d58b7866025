"""What each cluster's scripts need: paths on the backup host, the standby's settings for
its PostgreSQL version, the primary-side pieces. Pure: values in, values out."""

from __future__ import annotations

import ipaddress
import posixpath
from dataclasses import dataclass

from generator import pgversions as pv
# install folders `make install` writes into; sysconfdir, localstatedir and runstatedir are
# only looked up at run time and stay as the primary has them
from generator.pgconfig import BUILD_INSTALL_DIRS as RELOCATED_DIRS
from generator.pgconfig import option_value, rewrite_prefix
from generator.schema import DEFAULT_MAX_SLOT_WAL_KEEP_SIZE, HostSpec, size_bytes
from generator.validate import Cluster

@dataclass(frozen=True)
class ClusterPaths:
    home: str  # /pg_home/<cluster>
    soft_bak: str  # sources and extension tarballs, brought in by hand
    prefix: str  # /pg_home/<cluster>/pgsql<version>: this build's install (installed: PGHOME)
    # /pg_home/<cluster>/pgsql, the symlink to the build; or the parent of postgres.binaries
    # (/usr/lib/postgresql/15): every script finds the binaries in $PGHOME/bin, nowhere else
    pghome: str
    pgdata: str  # /<mountpoint>/pg_root, on the cluster's own dataset
    log_dir: str  # /pg_log/<cluster>
    archive: str  # /pg_arch/<cluster>/arch: the WAL archive, one folder per UTC day
    # /pg_arch/<cluster>/generations: <system id>/<UTC day>/ of each earlier system's WAL
    generations: str
    os_home: str  # the OS user's home, for .bash_profile and .pgpass


def restore_port(spec) -> int:
    """The port a restored clone listens on: the spec's, or the standby's port + 1000."""
    return spec.restore.port or spec.port + 1000


def drill_port(spec) -> int:
    """The first port a drill tries: the spec's, or the restore port + 1."""
    return spec.drill.port or restore_port(spec) + 1


def paths_of(host: HostSpec, cluster: Cluster) -> ClusterPaths:
    c = cluster.spec
    home = f"{host.datasets.pg_home.mountpoint}/{c.name}"
    installed = c.postgres.binaries and posixpath.dirname(c.postgres.binaries)
    return ClusterPaths(
        home=home, soft_bak=f"{home}/soft_bak",
        prefix=installed or f"{home}/pgsql{c.postgres.version}",
        pghome=installed or f"{home}/pgsql", pgdata=f"{cluster.mountpoint}/pg_root",
        log_dir=f"{host.datasets.pg_log.mountpoint}/{c.name}",
        archive=f"{host.datasets.pg_arch.mountpoint}/{c.name}/arch",
        generations=f"{host.datasets.pg_arch.mountpoint}/{c.name}/generations", os_home=c.home_dir)


def application_name(cluster: Cluster) -> str:
    """The name the standby connects to its primary with (pg_stat_replication, and what
    synchronous_standby_names would match): the cluster's name, held to [a-z_][a-z0-9_]*."""
    return cluster.spec.name


def backup_label(cluster: Cluster) -> str:
    """The label of the bundle's base backups (pg_basebackup -l, pg_start_backup's first
    argument): the primary's backup history files (*.backup) carry it as `LABEL: ...`, which
    check-primary.sh reads to find the newest one of ours."""
    return f"pitr-bundle {cluster.spec.name}"


def primary_conninfo(cluster: Cluster) -> str:
    c = cluster.spec
    hosts, ports = conninfo_nodes(cluster)
    return (f"host={hosts} port={ports} user={c.replication.user} "
            f"application_name={application_name(cluster)}{session_attrs(cluster)}")


def standby_follows_partner(cluster: Cluster) -> bool:
    """The standby's conninfo lists the HA partner too (libpq multi-host, from 10): after a
    failover libpq reaches whichever node accepts it. Before 10 a conninfo names one host and
    the standby keeps primary.address (a VIP or DNS name that follows the primary is then the
    right address; else re-run 60-standby.sh with the partner as primary.address)."""
    c = cluster.spec
    return bool(c.primary.ha_partner) and pv.has("libpq multi-host", c.postgres.version)


def conninfo_nodes(cluster: Cluster) -> tuple[str, str]:
    """host= and port= of the standby's conninfo: the primary, then its HA partner (the same
    port: the partner takes over the primary's service)."""
    primary = cluster.spec.primary
    nodes = primary.nodes if standby_follows_partner(cluster) else [primary.address]
    return ",".join(nodes), ",".join([str(primary.port)] * len(nodes))


def session_attrs(cluster: Cluster) -> str:
    """With two nodes listed, libpq must skip the one in recovery (the old primary come back
    as a standby, or the partner before a failover): a walreceiver on a standby's cascade
    would follow the wrong node's timeline."""
    if standby_follows_partner(cluster) and pv.has("target_session_attrs", cluster.spec.postgres.version):
        return " target_session_attrs=read-write"
    return ""


def tls_conninfo(cluster: Cluster) -> str:
    """The TLS keys the standby's primary_conninfo appends (replication.tls), or nothing."""
    tls = cluster.spec.replication.tls
    if tls is None:
        return ""
    return f" sslmode={tls.mode}" + (f" sslrootcert={tls.ca_file}" if tls.ca_file else "")


def tls_environment(cluster: Cluster) -> list[str]:
    """The same keys as libpq's environment, for the base backup's pg_basebackup (-d only
    from 9.3) and 9.0's psql: PGSSLMODE=..., PGSSLROOTCERT=..."""
    tls = cluster.spec.replication.tls
    if tls is None:
        return []
    return [f"PGSSLMODE={tls.mode}"] + ([f"PGSSLROOTCERT={tls.ca_file}"] if tls.ca_file else [])


def hba_connection_type(cluster: Cluster) -> str:
    """pg_hba.conf's connection type of the replication lines: hostssl refuses clear text."""
    return "hostssl" if cluster.spec.replication.tls else "host"


def restore_command(paths: ClusterPaths) -> str:
    # the archive never holds a file twice (the archive helper refuses), so the glob over the
    # day folders matches at most one file
    return f'cp --preserve=timestamps {paths.archive}/*/%f "%p"'


def recovery_settings(cluster: Cluster, paths: ClusterPaths) -> dict[str, str]:
    """Settings that make the server a standby: recovery.conf (< 12) or the config (>= 12)."""
    version = cluster.spec.postgres.version
    settings: dict[str, str] = {}
    if pv.has("standby_mode", version):
        settings["standby_mode"] = "on"
    settings["primary_conninfo"] = primary_conninfo(cluster) + tls_conninfo(cluster)
    if cluster.spec.replication.slot:
        settings["primary_slot_name"] = cluster.spec.replication.slot
    settings["restore_command"] = restore_command(paths)
    # latest: after a failover the standby follows the promoted node's new timeline (the
    # default only from 12; before, the timeline the base backup had). Kept explicit on every
    # version, so the setting says what the standby does.
    settings["recovery_target_timeline"] = "latest"
    return settings


def standby_settings(cluster: Cluster, paths: ClusterPaths) -> dict[str, str]:
    """postgresql.conf overrides for a standby sharing the backup host with others."""
    c = cluster.spec
    version = c.postgres.version
    socket_key = ("unix_socket_directories" if pv.has("unix_socket_directories", version)
                  else "unix_socket_directory")
    settings = {
        "port": str(c.port),
        "listen_addresses": "localhost",
        socket_key: paths.pgdata,  # .bash_profile sets PGHOST=$PGDATA, as the runbook does
        "logging_collector": "on",
        "log_directory": paths.log_dir,
        "hot_standby": "on" if c.standby.hot_standby else "off",
    }
    settings.update(standby_archiving(cluster))
    settings.update(c.standby.settings)
    if not pv.has("recovery.conf", version):
        settings.update(recovery_settings(cluster, paths))
    return settings


def standby_archive_helper(c) -> str:
    """The archive helper's path on the backup host (archive.method standby)."""
    return f"/usr/local/sbin/pitr-archive-wal-{c.name}"


def standby_archiving(cluster: Cluster) -> dict[str, str]:
    """The standby's archive settings. archive.method nfs: off, the primary archives. standby:
    it archives what it receives (always: also in recovery), through the helper into the local
    archive; each file it restores from the archive is offered again and found identical there.
    A restored or drilled clone never archives either way: restore.sh's own settings, read
    after these, force archive_mode off (its WAL would mix into the primary's)."""
    c = cluster.spec
    if c.archive_method != "standby":
        return {"archive_mode": "off"}
    return {"archive_mode": "always",
            "archive_command": f'{standby_archive_helper(c)} "%p" "%f"'}


def replication_auth(version: str) -> str:
    return "scram-sha-256" if pv.version_num(version) >= 140000 else "md5"


def hba_address(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # a host name: pg_hba.conf takes it as it is
    return f"{ip}/{32 if ip.version == 4 else 128}"


def archive_command(cluster: Cluster) -> str:
    c = cluster.spec
    helper = f"{'sudo -n ' if c.primary.archive_via_sudo else ''}{c.archive_helper}"
    # %p and %f are PostgreSQL's; the helper copies into <archive_mount>/arch/<UTC day>/
    # (its only target, fixed inside it: it runs as root) and never overwrites a file
    return f'{helper} "%p" "%f"'


def wal_level_needed(version: str) -> str:
    """The lowest wal_level a streaming standby needs (logical is above it, and kept)."""
    return "replica" if pv.has("wal_level=replica", version) else "hot_standby"


def primary_settings(cluster: Cluster) -> dict[str, str]:
    """What 45-apply-on-primary.sh writes into the include of a primary whose settings are the
    version's defaults (the bundle's primary/pitr-archive.conf, for review). On a real primary
    it writes only what must rise from the running server's values, and never lowers one."""
    c = cluster.spec
    version = c.postgres.version
    settings = {}
    if not pv.has("wal_level default replica", version):
        settings["wal_level"] = wal_level_needed(version)
    if c.archive_method == "nfs":  # with standby, the backup standby archives
        settings["archive_mode"] = "on"
        settings["archive_command"] = archive_command(cluster)
    if not pv.has("max_wal_senders default 10", version):
        settings["max_wal_senders"] = str(SENDERS_NEEDED)
    if c.replication.slot and not pv.has("max_replication_slots default 10", version):
        settings["max_replication_slots"] = "1"
    # an idle primary still switches segments, so the newest restorable point is never older
    # than this (also with archive_mode off, archive.method standby: measured on 17; the
    # standby archives a segment once it has received it whole)
    settings["archive_timeout"] = f"{c.primary.archive_timeout}s"
    # the slot must never fill the primary's disk while the standby is away (13+; it caps
    # every slot of the primary, so only when this cluster uses one)
    if c.replication.slot and pv.has("max_slot_wal_keep_size", version):
        settings["max_slot_wal_keep_size"] = (c.primary.max_slot_wal_keep_size
                                              or DEFAULT_MAX_SLOT_WAL_KEEP_SIZE)
    return settings


# walsenders the standby needs on its primary: the base backup's two (its files and its WAL
# stream), later the standby's one; the primary step adds those others use at the time
SENDERS_NEEDED = 2


INCLUDE_NAME = "pitr-archive.conf"  # beside the primary's real postgresql.conf


def primary_managed(cluster: Cluster) -> list[str]:
    """The settings 45-apply-on-primary.sh reads and may raise, in the include's order."""
    version = cluster.spec.postgres.version
    names = ["wal_level"]
    if cluster.spec.archive_method == "nfs":  # standby: the primary's archiving is not ours
        names += ["archive_mode", "archive_command"]
        if pv.has("archive_library", version):
            names.append("archive_library")  # set, it would archive instead of archive_command
    names.append("max_wal_senders")
    if cluster.spec.replication.slot:
        names.append("max_replication_slots")
    # caps: the standby needs them at most this high (an idle primary still archives; a slot
    # never fills the primary's disk); a stricter value the primary has is kept
    names.append("archive_timeout")
    if cluster.spec.replication.slot and pv.has("max_slot_wal_keep_size", version):
        names.append("max_slot_wal_keep_size")
    return names


def slot_keep_megabytes(cluster: Cluster) -> int:
    """max_slot_wal_keep_size in MB (its unit in pg_settings) for the primary step."""
    size = cluster.spec.primary.max_slot_wal_keep_size or DEFAULT_MAX_SLOT_WAL_KEEP_SIZE
    return size_bytes(size) // (1 << 20)


def primary_observed(cluster: Cluster) -> list[str]:
    """The settings the primary step reads: those it manages, and with archive.method standby the
    archiving ones too, which it never raises but must see to move a primary off the NFS path
    (the include of an earlier NFS bundle turned them on)."""
    names = primary_managed(cluster)
    if cluster.spec.archive_method == "standby":
        names += ["archive_mode", "archive_command"]
    return names


def flag_sql(condition: str, word: str) -> str:
    """SQL that says word when condition holds, else no<word>."""
    return f"case when {condition} then '{word}' else 'no{word}' end"


def primary_facts_sql(cluster: Cluster) -> str:
    """One query for everything the primary step asks the running server, as key/value rows.
    base:<name> is the value the configuration files give without the include (from 9.5,
    pg_file_settings; before, the running value unless it comes from the include itself)."""
    c = cluster.spec
    version = c.postgres.version
    names = ", ".join(f"'{n}'" for n in primary_observed(cluster))
    include = (f"regexp_replace(current_setting('config_file'), '[^/]*$', '') || "
               f"'{INCLUDE_NAME}'")
    rows = [
        "select 'version', current_setting('server_version_num')",
        "select 'recovery', case when pg_is_in_recovery() then 'yes' else 'no' end",
        "select 'data_directory', current_setting('data_directory')",
        "select 'config_file', current_setting('config_file')",
        "select 'hba_file', current_setting('hba_file')",
        f"select 'cur:' || name, setting from pg_settings where name in ({names})",
        f"select 'context:' || name, context from pg_settings where name in ({names})",
        f"select 'source:' || name, source from pg_settings where name in ({names})",
        f"select 'srcfile:' || name, coalesce(sourcefile, '') from pg_settings where name in ({names})",
    ]
    if pv.has("pg_file_settings", version):
        last = (f"(select f.setting, f.sourcefile from pg_file_settings f where f.name = s.name "
                f"and f.error is null and f.sourcefile <> {include} order by f.seqno desc limit 1)")
        rows += [
            f"select 'base:' || s.name, coalesce(f.setting, s.boot_val) from pg_settings s "
            f"left join lateral {last} f on true where s.name in ({names})",
            f"select 'basefile:' || s.name, coalesce(f.sourcefile, '') from pg_settings s "
            f"left join lateral {last} f on true where s.name in ({names})",
        ]
    else:
        ours = f"coalesce(sourcefile, '') = {include}"
        rows += [
            f"select 'base:' || name, setting from pg_settings where name in ({names}) and not {ours}",
            f"select 'basefile:' || name, coalesce(sourcefile, '') from pg_settings "
            f"where name in ({names}) and not {ours}",
        ]
    if c.replication.tls:
        rows.append("select 'ssl', current_setting('ssl')")  # TLS asked for: is it on?
    # the replication role, when it exists: "login|nologin super|nosuper replication|
    # noreplication password|nopassword" (pg_authid: the step runs as a superuser; the
    # password itself is never read)
    replication = (flag_sql("rolreplication", "replication")
                   if pv.has("replication role attribute", version) else "'noreplication'")
    rows.append(f"select 'role', {flag_sql('rolcanlogin', 'login')} || ' ' "
                f"|| {flag_sql('rolsuper', 'super')} "
                f"|| ' ' || {replication} || ' ' || {flag_sql('rolpassword is not null', 'password')} "
                f"from pg_authid where rolname = '{c.replication.user}'")
    if pv.has("pg_stat_replication", version):
        rows.append(f"select 'senders_other', count(*)::text from pg_stat_replication "
                    f"where application_name <> '{application_name(cluster)}'")
    else:
        rows.append("select 'senders_other', '0'")  # 9.0 does not show its walsenders
    if pv.has("synchronous_standby_names", version):
        # the step refuses a value that would make the backup standby synchronous, and names
        # the other standbys streaming now for the value to write instead
        rows += [
            "select 'sync_names', current_setting('synchronous_standby_names')",
            "select 'other_standbys', coalesce(string_agg(distinct application_name, ', '), '') "
            f"from pg_stat_replication where application_name <> '{application_name(cluster)}'",
        ]
    if c.replication.slot:
        slot = c.replication.slot
        rows += [
            f"select 'slot', slot_type from pg_replication_slots where slot_name = '{slot}'",
            f"select 'slot_active', {flag_sql('active', 'active')} from pg_replication_slots "
            f"where slot_name = '{slot}'",
            f"select 'slots_other', count(*)::text from pg_replication_slots "
            f"where slot_name <> '{slot}'",
        ]
    return "\nunion all ".join(rows)


def create_slot_sql(cluster: Cluster, reserve: bool = True) -> str:
    """Creates the slot only when it is missing (a re-run, or a race with another run, is
    harmless). On the primary, from 9.6, it reserves WAL at once, so no WAL the base backup
    needs goes. reserve False: the HA partner's copy (see standby_slot_sql)."""
    slot = cluster.spec.replication.slot
    reserving = reserve and pv.has("slot reserves WAL at creation", cluster.spec.postgres.version)
    return (f"select pg_create_physical_replication_slot('{slot}'{', true' if reserving else ''}) "
            f"where not exists (select 1 from pg_replication_slots where slot_name = '{slot}')")


def standby_slot_sql(cluster: Cluster) -> str:
    """The slot on the node in recovery (the HA partner), made without reserving WAL
    (immediately_reserve false, the default; before 9.6 slots never reserve at creation): a
    reserving slot nobody streams through would pin the partner's WAL from now on, for as long
    as it stays a standby, and fill its disk. Unreserved, it pins nothing until the backup
    standby first streams through it after a promotion; then it holds from the position the
    standby asks for. That WAL must still be on the new primary: what it kept as a standby
    (wal_keep_size/wal_keep_segments, min_wal_size, the segments since its last restartpoint)
    and, from the fork on, its own new timeline. What is gone, the standby restores from the
    archive (restore_command), into which the new primary archives its new timeline and its
    .history file."""
    return create_slot_sql(cluster, reserve=False)


def psql_candidates(cluster: Cluster) -> list[str]:
    """Where the primary's psql may be when it is not on PATH: the primary's own build (its
    configure line), Debian's and PGDG's package folders."""
    c = cluster.spec
    args = list(c.postgres.configure)
    bindir = option_value(args, "--bindir")
    prefix = option_value(args, "--prefix")
    found = []
    if bindir and bindir.startswith("/"):
        found.append(f"{bindir}/psql")
    elif prefix and prefix.startswith("/"):
        found.append(f"{prefix}/bin/psql")
    found += [f"/usr/lib/postgresql/{c.postgres.major_text}/bin/psql",
              f"/usr/pgsql-{c.postgres.major_text}/bin/psql"]
    return found


def configure_for_backup_host(args: list[str], new_prefix: str) -> list[str]:
    """The primary's configure options with --prefix moved to new_prefix and every install
    folder option (RELOCATED_DIRS: --bindir, --libdir, ... as literal paths or ${prefix}/...)
    dropped, so that configure's default layout under new_prefix is what the bundle's scripts
    use: $PGHOME/bin, $PGHOME/lib. (Debian's --bindir=/usr/lib/postgresql/15/bin moved along
    gave <prefix>/lib/postgresql/15/bin, where no script looks.) Everything else is kept byte
    for byte."""

    kept: list[str] = []
    words = rewrite_prefix(args, new_prefix)
    i = 0
    while i < len(words):
        word = words[i]
        name, eq, _ = word.partition("=")
        if name.startswith("--") and name[2:] in DROPPED_OPTIONS:
            nxt = words[i + 1] if i + 1 < len(words) else None
            # the two-word form (--bindir /x) takes the next word along
            i += 2 if not eq and nxt is not None and not nxt.startswith("-") else 1
            continue
        kept.append(word)
        i += 1
    return kept


# and one autoconf 2.71 added: every PostgreSQL release's configure (autoconf 2.69) stops on
# it, and PostgreSQL never uses it (Debian's pg_config has it: its configure is regenerated)
DROPPED_OPTIONS = RELOCATED_DIRS + ("runstatedir",)


def dropped_options(args: list[str]) -> list[str]:
    """The primary's options configure_for_backup_host leaves out, for the reviewer."""
    kept = set(configure_for_backup_host(args, "/x"))
    return [word for word in args if word not in kept and not word.startswith(("--prefix", "--p"))
            and word.partition("=")[0][2:] in DROPPED_OPTIONS]


def autoconf_recorded(args: list[str]) -> str:
    """What `pg_config --configure` prints for a build configured with args."""
    return " ".join("'" + arg.replace("'", "'\\''") + "'" for arg in args)


def version_recorded(version: str, args: list[str]) -> str:
    """What `pg_config --version` prints for a build of version configured with args:
    configure appends --with-extra-version's text ("15.18 (Debian 15.18-0+deb12u1)")."""
    return f"PostgreSQL {version}{option_value(args, '--with-extra-version') or ''}"


def wal_dir(version: str) -> str:
    return "pg_wal" if pv.has("pg_wal", version) else "pg_xlog"


def receiver_title(version: str) -> str:
    """The standby's WAL receiver process title, as pgrep -f finds it."""
    return "walreceiver" if pv.has("walreceiver process title", version) else "wal receiver process"


def drill_state_file(spec) -> str:
    return f"{spec.drill.state_dir}/drill-{spec.name}.state"


def timeline_state_file(spec) -> str:
    """The timeline the monitor last acknowledged for the cluster (beside the drill's state,
    which it reads too)."""
    return f"{spec.drill.state_dir}/timeline-{spec.name}.state"


def fork_hint(spec) -> str:
    """What brings back a standby that replayed past the new timeline's fork point."""
    if pv.has("pg_rewind", spec.postgres.version):
        return ("pg_rewind from the new primary brings it back without a new base backup (after "
                "a snapshot of its dataset), else take a new base backup (50-basebackup.sh --force)")
    return (f"take a new base backup (50-basebackup.sh --force): PostgreSQL "
            f"{spec.postgres.major_text} has no pg_rewind (from 9.5)")
