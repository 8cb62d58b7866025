"""Our own shell code (test runner, bats helpers, fakes) is held to the bundle's standard."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_own_shell_files_pass_shellcheck():
    files = [REPO / "tests/run", REPO / ".ci/run", *sorted((REPO / "generator/suites").glob("*.bash")),
             *sorted((REPO / "tests").rglob("*.sh"))]
    shellcheck = Path(sys.executable).parent / "shellcheck"
    result = subprocess.run([str(shellcheck if shellcheck.exists() else "shellcheck"),
                             "--shell=bash", "--severity=style", *map(str, files)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
