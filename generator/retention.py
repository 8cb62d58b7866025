"""How far back the snapshot retention keeps snapshots, as snapshot.sh's retention_plan keeps
them: for validate's check that snapshots.keep covers archive.pitr_window_days.

retention_plan walks the snapshots from the newest and keeps, per period (hour, day, ISO week
from Monday, month, year, in UTC), the newest snapshot of each of the last N periods that have
one. Each period's rule acts alone, so the oldest snapshot kept is the oldest of the rules':
for keep N >= 2 the newest snapshot of the N-th period back. A restore to a time T needs a
kept snapshot taken at or before T; a window of D days needs one at least D days old at every
moment. The oldest kept grows older until the next snapshot's pruning, so the worst moment is
just after a pruning: for each period, just after the first snapshot of an hour.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from datetime import date, timedelta

from generator.schedule import hourly_runs

PERIODS = ("hourly", "daily", "weekly", "monthly", "yearly")
_START = date(2024, 1, 1)  # a Monday: ISO weeks start on whole days from here
_EVALUATED_DAYS = 400  # a year of calendar patterns (months, weekdays), looked at after the window
_MAX_KEEP = 100000  # the schema's limit of a keep count


def _bucket(minute: int, period: str):
    day = _START + timedelta(minutes=minute)
    return {"hourly": minute // 60, "daily": minute // 1440,
            "weekly": minute // (1440 * 7), "monthly": (day.year, day.month),
            "yearly": day.year}[period]


@dataclass(frozen=True)
class _Period:
    last_run: list[int]  # each bucket's newest run, in minutes
    of_hour: list[int]  # each hour's bucket index


def _periods(runs: list[tuple[int, int]]) -> dict[str, _Period]:
    found = {}
    for period in PERIODS:
        last_run, of_hour, previous = [], [], None
        for first, last in runs:
            key = _bucket(first, period)
            if key != previous:
                last_run.append(last)
                previous = key
            last_run[-1] = last
            of_hour.append(len(last_run) - 1)
        found[period] = _Period(last_run, of_hour)
    return found


@dataclass(frozen=True)
class Cover:
    """The least age of the oldest snapshot kept, over the moments looked at."""

    minutes: int  # at the worst moment, the oldest kept snapshot's age (minutes)
    enough: dict[str, int]  # per period, the keep count that alone would cover the window


class _Simulation:
    def __init__(self, schedule: str, window_days: int):
        self.window = window_days * 1440
        # history before the moments looked at: a rule reaching past it keeps a snapshot
        # older than the window
        self.first_day = window_days + 2
        runs = hourly_runs(schedule, _START, self.first_day + _EVALUATED_DAYS)
        self.runs = runs
        self.periods = _periods(runs)
        first = bisect_left(runs, (self.first_day * 1440, 0))
        self.moments = range(first, len(runs))

    def age(self, period: str, keep: int, hour: int) -> int:
        """The age of the oldest snapshot `keep` of `period` keeps, just after the first run of
        the hour at index `hour` (a rule reaching past the history: older than the window)."""
        if keep < 2:
            return 0
        p = self.periods[period]
        back = p.of_hour[hour] - keep + 1
        if back < 0:
            return self.window + 1
        return self.runs[hour][0] - p.last_run[back]

    def worst(self, keep: dict[str, int]) -> int:
        if not self.runs:
            return 0
        return min((max(self.age(p, keep[p], h) for p in PERIODS) for h in self.moments),
                   default=0)

    def enough(self, period: str) -> int:
        """The least keep count of `period` that alone covers the window (0: none does)."""
        def covers(n: int) -> bool:
            return all(self.age(period, n, h) >= self.window for h in self.moments)
        low, high = 2, _MAX_KEEP
        if not self.runs or not covers(high):
            return 0
        while low < high:
            middle = (low + high) // 2
            if covers(middle):
                high = middle
            else:
                low = middle + 1
        return low


def cover(schedule: str, keep: dict[str, int], window_days: int) -> Cover:
    """How far back the retention keeps snapshots at its worst moment, and, when that is less
    than the window, the keep count per period that would cover it."""
    simulation = _Simulation(schedule, window_days)
    worst = simulation.worst(keep)
    enough = {}
    if worst < simulation.window:
        enough = {p: n for p in PERIODS if (n := simulation.enough(p))}
    return Cover(worst, enough)
