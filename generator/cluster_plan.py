"""What each cluster's scripts need: paths on the backup host, the standby's settings for
its PostgreSQL version, the primary-side pieces. Pure: values in, values out."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from generator import pgversions as pv
from generator.schema import HostSpec
from generator.validate import Cluster

# settings a hot standby must keep at least as high as the primary's (else it refuses to start)
HOT_STANDBY_FLOORS = ("max_connections", "max_worker_processes", "max_prepared_transactions",
                      "max_locks_per_transaction", "max_wal_senders")


@dataclass(frozen=True)
class ClusterPaths:
    home: str  # /pg_home/<cluster>
    soft_bak: str  # sources and extension tarballs, brought in by hand
    prefix: str  # /pg_home/<cluster>/pgsql<version>: this build's install
    pghome: str  # /pg_home/<cluster>/pgsql: the symlink every other file uses
    pgdata: str  # /<mountpoint>/pg_root, on the cluster's own dataset
    log_dir: str  # /pg_log/<cluster>
    archive: str  # /pg_arch/<cluster>/arch: the WAL archive, one folder per UTC day
    os_home: str  # the OS user's home, for .bash_profile and .pgpass


def restore_port(spec) -> int:
    """The port a restored clone listens on: the spec's, or the standby's port + 1000."""
    return spec.restore.port or spec.port + 1000


def paths_of(host: HostSpec, cluster: Cluster) -> ClusterPaths:
    c = cluster.spec
    home = f"{host.datasets.pg_home.mountpoint}/{c.name}"
    return ClusterPaths(
        home=home, soft_bak=f"{home}/soft_bak", prefix=f"{home}/pgsql{c.postgres.version}",
        pghome=f"{home}/pgsql", pgdata=f"{cluster.mountpoint}/pg_root",
        log_dir=f"{host.datasets.pg_log.mountpoint}/{c.name}",
        archive=f"{host.datasets.pg_arch.mountpoint}/{c.name}/arch", os_home=c.home_dir)


def primary_conninfo(cluster: Cluster) -> str:
    c = cluster.spec
    return (f"host={c.primary.address} port={c.primary.port} user={c.replication.user} "
            f"application_name={c.name}")


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
    settings["primary_conninfo"] = primary_conninfo(cluster)
    if cluster.spec.replication.slot:
        settings["primary_slot_name"] = cluster.spec.replication.slot
    settings["restore_command"] = restore_command(paths)
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
        # a standby must never write into an archive: it has none, and a promoted copy of it
        # would mix its WAL into the primary's
        "archive_mode": "off",
    }
    settings.update(c.standby.settings)
    if not pv.has("recovery.conf", version):
        settings.update(recovery_settings(cluster, paths))
    return settings


def replication_auth(version: str) -> str:
    return "scram-sha-256" if pv.version_num(version) >= 140000 else "md5"


def hba_address(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # a host name: pg_hba.conf takes it as it is
    return f"{ip}/{32 if ip.version == 4 else 128}"


def primary_settings(cluster: Cluster) -> dict[str, str]:
    c = cluster.spec
    version = c.postgres.version
    helper = f"{'sudo -n ' if c.primary.archive_via_sudo else ''}{c.primary.archive_script}"
    settings = {
        "wal_level": "replica" if pv.has("wal_level=replica", version) else "hot_standby",
        "archive_mode": "on",
        # %p and %f are PostgreSQL's; the helper copies into <archive_mount>/arch/<UTC day>/
        # (its only target, fixed inside it: it runs as root) and never overwrites a file
        "archive_command": f'{helper} "%p" "%f"',
    }
    if not pv.has("max_wal_senders default 10", version):
        settings["max_wal_senders"] = "5"
    return settings


# install folders `make install` writes into; sysconfdir, localstatedir and runstatedir are
# only looked up at run time and stay as the primary has them
from generator.pgconfig import BUILD_INSTALL_DIRS as RELOCATED_DIRS  # noqa: E402


def configure_for_backup_host(args: list[str], new_prefix: str) -> list[str]:
    """The primary's configure options with --prefix moved to new_prefix and every install
    folder option (RELOCATED_DIRS: --bindir, --libdir, ... as literal paths or ${prefix}/...)
    dropped, so that configure's default layout under new_prefix is what the bundle's scripts
    use: $PGHOME/bin, $PGHOME/lib. (Debian's --bindir=/usr/lib/postgresql/15/bin moved along
    gave <prefix>/lib/postgresql/15/bin, where no script looks.) Everything else is kept byte
    for byte."""
    from generator.pgconfig import rewrite_prefix

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
    from generator.pgconfig import option_value

    return f"PostgreSQL {version}{option_value(args, '--with-extra-version') or ''}"


def wal_dir(version: str) -> str:
    return "pg_wal" if pv.has("pg_wal", version) else "pg_xlog"
