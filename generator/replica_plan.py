"""The files of a second copy (docs/replicas.md): on a source host, one send command and its
setup per replica; on a replica host, its ssh identity, the pull and its schedule. Both sides
read the same ReplicaLink, so the replica asks for exactly what the source's command allows."""

from __future__ import annotations

from generator.model import HostModel, ReplicaLink
from generator.planned import (CONFIG_MODE, KEPT_PROPERTY, MAJOR_PROPERTY, REDO_PROPERTY,
                               REPLICA_STATE_FILE, SYSTEM_ID_PROPERTY, TIMELINE_PROPERTY,
                               PlannedFile)

# the pitr-bundle properties of each snapshot that travel with it to the replica
SNAPSHOT_PROPERTIES = (REDO_PROPERTY, SYSTEM_ID_PROPERTY, MAJOR_PROPERTY, TIMELINE_PROPERTY,
                       KEPT_PROPERTY)
REPLICA_DIR = "/etc/pitr-bundle/replica/{source}"
REPLICATE_INSTALLED = "/usr/local/sbin/pitr-replicate-{source}"


def _sources(model: HostModel, link: ReplicaLink, hosts_first) -> list:
    """The specs a file of either side renders: both host specs and the copied clusters'."""
    copied = sorted({d.cluster for d in link.datasets})
    clusters = model.host.copied if model.replica_of else model.host.clusters
    return hosts_first + [c.source for c in clusters if c.spec.name in copied]


def plan_senders(model: HostModel) -> list[PlannedFile]:
    """On a source host: per replica, its send command and the script that lets it in."""
    files = []
    for link, replica in zip(model.replicas, model.host.replicas):
        sources = _sources(model, link, [model.host.source, replica.source])
        send = PlannedFile(
            f"host/pitr-send-{link.replica}.sh", "replica-send", "host/replica-send.sh.j2",
            f"the only command replica {link.replica}'s ssh key may run here: lists, snapshots "
            "the WAL archives, sends and holds the copied datasets",
            sources, context={
                "link": link, "setup_file": f"26-replica-sender-{link.replica}.sh",
                "state_dir": f"/var/lib/pitr-bundle/send-{link.replica}",
                "properties": SNAPSHOT_PROPERTIES,
                "allowed": "\n".join(f"{d.source}\t{d.kind}\t{d.prefix}" for d in link.datasets)})
        forced = (link.send_command if link.privilege == "delegation"
                  else f"/usr/bin/sudo -n {link.send_command}")
        files += [send, PlannedFile(
            f"host/26-replica-sender-{link.replica}.sh", "replica-sender",
            "host/replica-sender.sh.j2",
            f"let replica {link.replica} pull as {link.user}: the user, its key fixed to "
            f"{link.send_command}, {'zfs allow' if link.privilege == 'delegation' else 'a sudo rule'}",
            sources, order=26, uses_install_block=True, context={
                "link": link, "send_file": send, "replica_address": replica.spec.address,
                "home": f"/var/lib/{link.user}",
                "state_dir": f"/var/lib/pitr-bundle/send-{link.replica}",
                "sudoers_file": f"/etc/sudoers.d/pitr-send-{link.replica}",
                "forced_command": forced})]
    return files


def plan_replica(model: HostModel) -> list[PlannedFile]:
    """On a replica host: its ssh identity, the pull, and the pull's schedule."""
    link = model.replica_of
    sources = _sources(model, link, [model.host.source, model.host.source_host.source])
    folder = REPLICA_DIR.format(source=link.source)
    installed = REPLICATE_INSTALLED.format(source=link.source)
    cron_name = f"pitr-bundle-replicate-{link.source}"
    common = {"link": link, "key_file": f"{folder}/id_ed25519",
              "known_hosts": f"{folder}/known_hosts"}
    replicate = PlannedFile(
        "host/replicate.sh", "replicate", "host/replicate.sh.j2",
        f"pull the newest snapshots of {link.source}'s clusters and WAL archives into "
        f"{link.root}, hold the base on the source, prune by this host's keep counts",
        sources, syslog_tag="pitr-replicate", context={
            **common, "installed": installed,
            "state_file": REPLICA_STATE_FILE.format(source=link.source),
            "lock_file": f"/run/lock/pitr-replicate-{link.source}.lock",
            "properties": SNAPSHOT_PROPERTIES,
            "copies": "\n".join(f"{d.cluster}\t{d.kind}\t{d.source}\t{d.copy}\t{d.prefix}"
                                for d in link.datasets)})
    cron = PlannedFile(
        "host/replicate.cron", "replicate-cron-file", "host/replicate.cron.j2",
        f"the schedule of the pull: {link.schedule} ({link.time_zone})",
        [model.host.source], mode=CONFIG_MODE, context={
            "link": link, "installed": installed, "cron_name": cron_name,
            "installer": "host/70-install-replication.sh"})
    return [
        PlannedFile(
            "host/25-replica-key.sh", "replica-key", "host/replica-key.sh.j2",
            f"make this replica's ssh key pair and record {link.source}'s host key",
            [model.host.source, model.host.source_host.source], order=25, context={
                **common, "sender_file": f"26-replica-sender-{link.replica}.sh"}),
        replicate, cron,
        PlannedFile(
            "host/70-install-replication.sh", "replicate-install", "host/replicate-cron.sh.j2",
            # installs the bundle's files, checked when it runs: it renders no cluster's value
            f"install the pull as {installed} and its cron schedule", [model.host.source], order=70,
            context={"link": link, "installed": installed, "cron_name": cron_name,
                     "replicate_file": replicate, "cron_file": cron}),
    ]
