"""When a cron schedule runs, as cron reads it: the longest wait between two runs, for the
RTO check (the WAL a restore may replay is what the primary writes in that wait) and for the
monitor's ages of the newest snapshot and the last scrub (generator/model.py)."""

from __future__ import annotations

from datetime import date, timedelta

from generator.schema import CRON_FIELDS

# a year from a Monday, plus the days a wrap-around needs: every weekday, month and day of
# month pattern repeats within it
_START = date(2024, 1, 1)
_DAYS = 366 + 31


def _values(text: str, low: int, high: int, names: tuple) -> set[int]:
    """The numbers one field matches (a schedule the schema has already accepted)."""
    found: set[int] = set()
    for item in text.split(","):
        base, _, step = item.partition("/")
        if base == "*":
            first, last = low, high
        else:
            ends = [names.index(e.lower()) + low if e.lower() in names else int(e)
                    for e in base.split("-")]
            first, last = ends[0], (ends[-1] if len(ends) == 2 or not step else high)
        found.update(range(first, last + 1, int(step) if step else 1))
    return found


def _parse(schedule: str) -> tuple[list[str], list[set[int]]]:
    fields = schedule.split()
    values = [_values(t, lo, hi, names) for t, (_, lo, hi, names) in zip(fields, CRON_FIELDS)]
    values[4] = {d % 7 for d in values[4]}
    return fields, values


def _run_days(schedule: str, start: date, days: int):
    """(day offset from start, sorted hours, sorted minutes) of each day the schedule runs on."""
    fields, (minute, hour, dom, month, dow) = _parse(schedule)
    # cron: when both day fields are restricted, a day matching either runs
    dom_any, dow_any = fields[2].startswith("*"), fields[4].startswith("*")
    hours, minutes = sorted(hour), sorted(minute)
    for offset in range(days):
        day = start + timedelta(days=offset)
        weekday = day.isoweekday() % 7
        if day.month not in month:
            continue
        if dom_any or dow_any:
            ok = day.day in dom and weekday in dow
        else:
            ok = day.day in dom or weekday in dow
        if ok:
            yield offset, hours, minutes


def longest_gap_minutes(schedule: str) -> int:
    """The longest time between two consecutive runs of a cron schedule, in minutes."""
    runs: list[int] = []
    for offset, hours, minutes in _run_days(schedule, _START, _DAYS):
        runs.extend(offset * 1440 + h * 60 + m for h in hours for m in minutes)
    if len(runs) < 2:
        return _DAYS * 1440
    return max(b - a for a, b in zip(runs, runs[1:]))


def hourly_runs(schedule: str, start: date, days: int) -> list[tuple[int, int]]:
    """Each hour the schedule runs in, from start for `days` days: its first and last run, in
    minutes since start (what retention needs: it keeps snapshots per hour and longer)."""
    found = []
    for offset, hours, minutes in _run_days(schedule, start, days):
        found.extend((offset * 1440 + h * 60 + minutes[0], offset * 1440 + h * 60 + minutes[-1])
                     for h in hours)
    return found
