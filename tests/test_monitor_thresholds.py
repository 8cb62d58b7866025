"""The monitor's thresholds that follow the specs' schedules (generator/model.py): the newest
snapshot's age from snapshots.schedule, the last scrub's age from scrub.schedule; the new spec
fields (monitor.replay_*, monitor.snapshot_* unset or both set, scrub.*) validated with
file:line: field errors; the scrub cron file only when the host spec installs one."""

from __future__ import annotations

import re

import pytest

from conftest import EXAMPLE_SPECS, pitr_bundle
from generator.bundle import build_bundle
from generator.model import derive, scrub_warn_seconds, snapshot_thresholds
from generator.validate import load_and_validate
from test_validate import edit, errors_of, line_of

HOUR = 3600


def cluster_spec():
    host = load_and_validate(EXAMPLE_SPECS)[0]
    spec = host.clusters[1].spec
    return spec


@pytest.mark.parametrize("schedule, time_zone, warn, crit", [
    # daily: two waits + 15 min; one more wait later (a day)
    ("1 8 * * *", "UTC", 48 * HOUR + 900, 72 * HOUR + 900),
    # hourly: the same 2 waits, but the critical a day after the warning, not an hour
    ("5 * * * *", "UTC", 2 * HOUR + 900, 26 * HOUR + 900),
    # weekly: one more week
    ("0 1 * * 0", "UTC", 14 * 24 * HOUR + 900, 21 * 24 * HOUR + 900),
    # outside UTC a change of daylight saving time lengthens a wait by an hour
    ("1 8 * * *", "Europe/Berlin", 50 * HOUR + 900, 75 * HOUR + 900),
    # weekdays only: the longest wait is Friday to Monday
    ("0 6 * * 1-5", "UTC", 2 * 72 * HOUR + 900, 3 * 72 * HOUR + 900),
])
def test_snapshot_age_thresholds_follow_the_schedule(schedule, time_zone, warn, crit):
    spec = cluster_spec()
    spec = spec.model_copy(update={"snapshots": spec.snapshots.model_copy(
        update={"schedule": schedule, "time_zone": time_zone})})
    assert snapshot_thresholds(spec) == (warn, crit)


def test_snapshot_hours_given_in_the_spec_win(specs_copy):
    cluster = specs_copy / "clusters/pg168121.yaml"
    cluster.write_text(cluster.read_text() + "monitor:\n  snapshot_warn_hours: 3\n  snapshot_crit_hours: 5\n")
    model = derive(load_and_validate(specs_copy)[0])
    assert (model.clusters[1].snapshot_warn_seconds, model.clusters[1].snapshot_crit_seconds) == (3 * HOUR, 5 * HOUR)


def test_the_example_bundle_reads_its_thresholds_from_the_model():
    host = load_and_validate(EXAMPLE_SPECS)[0]
    model = derive(host)
    files = {f.path: f.content.decode() for f in build_bundle(host)}
    check = files["host/monitor.sh"]
    for cm in model.clusters:
        # the example's daily 08:01 UTC schedule: 48 h 15 min, 72 h 15 min
        assert (cm.snapshot_warn_seconds, cm.snapshot_crit_seconds) == (173700, 260100)
        assert re.search(rf"check_cluster {cm.name} .* 173700 260100 ", check)
    # the monthly scrub: the longest wait 31 days, WARNING past 46.5 days
    assert model.scrub.warn_seconds == scrub_warn_seconds("0 3 1 * *", "UTC") == 31 * 24 * HOUR * 3 // 2
    assert f"readonly SCRUB_WARN={model.scrub.warn_seconds} " in check
    assert "0 3 1 * * root zpool status zp1 | grep -q 'in progress' || zpool scrub zp1" in files["host/scrub.cron"]


def test_only_one_snapshot_threshold_is_refused_with_file_line_field(specs_copy):
    cluster = specs_copy / "clusters/pg168121.yaml"
    cluster.write_text(cluster.read_text() + "monitor:\n  snapshot_warn_hours: 30\n")
    (error,) = errors_of(specs_copy)
    assert error == (f"{cluster}:{line_of(cluster, 'monitor:')}: monitor: set both snapshot_warn_hours "
                     "and snapshot_crit_hours, or neither (both then follow snapshots.schedule)"), error


@pytest.mark.parametrize("pair", ["replay_lag_{}_mb", "replay_delay_{}_minutes", "snapshot_{}_hours"])
def test_a_warning_above_its_critical_is_refused(specs_copy, pair):
    cluster = specs_copy / "clusters/pg168121.yaml"
    cluster.write_text(cluster.read_text() + f"monitor:\n  {pair.format('warn')}: 90\n  {pair.format('crit')}: 60\n")
    (error,) = errors_of(specs_copy)
    assert error.endswith(f": monitor: {pair.format('warn')} is above {pair.format('crit')}"), error
    assert f"{cluster}:{line_of(cluster, 'monitor:')}:" in error


@pytest.mark.parametrize("field, value, message", [
    ("schedule", '"0 3 32 * *"', "scrub.schedule: day of month: '32' is outside 1-31"),
    ("schedule", '"@monthly"', "scrub.schedule: a cron schedule has 5 fields"),
    ("time_zone", '"UTC; zpool destroy zp1"', "scrub.time_zone:"),
    ("mailto", '"root\\nMAILTO=x"', "scrub.mailto:"),
    ("install_cron", '"sometimes"', "scrub.install_cron:"),
])
def test_bad_scrub_fields_are_refused_with_file_line_field(specs_copy, field, value, message):
    host = specs_copy / "hosts/pitr1.yaml"
    host.write_text(host.read_text() + f"scrub:\n  {field}: {value}\n")
    (error,) = errors_of(specs_copy)
    assert error.startswith(f"{host}:{line_of(host, field + ':')}: {message}"), error


def test_a_scrub_run_by_something_else_installs_no_cron_file_but_is_still_checked(specs_copy, tmp_path):
    host = specs_copy / "hosts/pitr1.yaml"
    host.write_text(host.read_text() + 'scrub:\n  schedule: "24 0 1 * *"\n  install_cron: false\n')
    pitr_bundle("build", str(specs_copy), "-o", str(tmp_path / "out"), check=True)
    bundle = tmp_path / "out/pitr1"
    assert not (bundle / "host/scrub.cron").exists()
    installer = (bundle / "host/80-install-monitor.sh").read_text()
    assert "SCRUB_CRON" not in installer and "scrub.install_cron is false" in installer
    assert "readonly SCRUB_WARN=4017600 SCRUB_SCHEDULE='24 0 1 * * UTC'" in (bundle / "host/monitor.sh").read_text()
    check = pitr_bundle("check", str(bundle), "--no-bats")
    assert check.returncode == 0, check.stdout + check.stderr
