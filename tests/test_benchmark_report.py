"""benchmarks/pgbackrest.py's section of RESULTS.md, rendered again from the figures of two real
runs (their stderr's "figures:" line, tests/fixtures/pgbackrest/): the text follows the run (its
schedule, its repeats, the size it did not measure) and leaves no template text unfilled. A
missing `f` once printed "the median of {info['repeats']} runs" into RESULTS.md."""

from __future__ import annotations

import importlib.util
import re
import sys

import pytest

from conftest import REPO

FIXTURES = REPO / "tests/fixtures/pgbackrest"


@pytest.fixture(scope="module")
def pgbackrest():
    spec = importlib.util.spec_from_file_location("pgbackrest_bench", REPO / "benchmarks/pgbackrest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    path = sys.path[:]
    try:
        spec.loader.exec_module(module)
    finally:  # it puts benchmarks/ first on sys.path for itself; the other tests never see it
        sys.path[:] = path
    return module


def rendered(pgbackrest, name: str) -> str:
    return "\n".join(pgbackrest.section_from_log(FIXTURES / name))


def test_no_placeholder_is_left_unfilled(pgbackrest):
    for log in sorted(FIXTURES.glob("*.log")):
        text = rendered(pgbackrest, log.name)
        assert not re.search(r"\{[a-z_]+(\[[^]]*\])?\}", text), (log.name, re.findall(r"\{[^}]*\}", text))


def test_the_text_follows_the_run(pgbackrest):
    hour_before = rendered(pgbackrest, "2gb-full-1h-before.log")
    assert "pgBackRest's full backup" in hour_before and "then 1 h of the workload" in hour_before
    assert "Each cell: one run," in hour_before and "median of 1 runs" not in hour_before
    assert "| 30 min | **2.41x** | **2.26x** |" in hour_before
    assert "and a size above 2 GB" in hour_before
    same_moment = rendered(pgbackrest, "5gb-same-moment.log")
    assert "both at the same moment, pgBackRest's best case" in same_moment
    assert "pgbench scale 350" in same_moment and "| 5 min | **3.86x** |" in same_moment
    assert "and the 2 GB of the default `--scale`" in same_moment
