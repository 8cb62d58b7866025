"""What a plan is made of: the record of one planned file, and the names (ZFS user properties,
file modes, state files) that the host's and the replica's planners both write into scripts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from generator.load import SpecFile

SCRIPT_MODE = 0o750
CONFIG_MODE = 0o640


@dataclass
class PlannedFile:
    path: str  # relative to the bundle root
    role: str  # MANIFEST role; tools and reviewers rely on these names
    template: str
    summary: str  # one line for the bundle README and the script header
    sources: list[SpecFile]  # the specs whose values it renders (its provenance header)
    cluster: Optional[str] = None
    mode: int = SCRIPT_MODE
    order: Optional[int] = None  # position in the run order; None: not run directly
    destructive: bool = False
    runs_on: str = "backup host"
    context: dict[str, Any] = field(default_factory=dict)
    context_force: bool = False  # the script takes --force
    uses_install_block: bool = False  # the preamble's install_block helper is needed
    syslog_tag: str = ""  # log to syslog too, with this tag (scripts run from cron)

    @property
    def takes_force(self) -> bool:
        return self.context_force or bool(self.context.get("takes_force"))


REDO_PROPERTY = "pitr-bundle:redo-wal"
KEPT_PROPERTY = "pitr-bundle:wal-kept-from"
# on each snapshot (and SYSTEM_ID_PROPERTY on the cluster's dataset after each base backup):
# the system, major and timeline it holds. A contract: restore.sh --list shows them
SYSTEM_ID_PROPERTY = "pitr-bundle:system-id"
MAJOR_PROPERTY = "pitr-bundle:major"
TIMELINE_PROPERTY = "pitr-bundle:timeline"


# what host/replicate.sh leaves of each pull on a replica (its monitor reads it)
REPLICA_STATE_FILE = "/var/lib/pitr-bundle/replica-{source}.state"
