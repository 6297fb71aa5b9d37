"""A schedule's timetable, as `schedule describe` writes back what the server keeps."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import (
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleRange,
    ScheduleSpec,
)

from runner.client.schedules import _when, timetable
from runner.errors import UsageError


def calendar(minute, hour, dom=(1, 31), month=(1, 12), dow=(0, 6), step=1):
    return ScheduleCalendarSpec(
        second=(ScheduleRange(0),),
        minute=(ScheduleRange(minute[0], minute[1], step),),
        hour=(ScheduleRange(*hour),),
        day_of_month=(ScheduleRange(*dom),),
        month=(ScheduleRange(*month),),
        day_of_week=(ScheduleRange(*dow),),
    )


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        (ScheduleSpec(calendars=[calendar((0, 0), (3, 3))]), "cron 0 3 * * *"),
        (
            ScheduleSpec(calendars=[calendar((0, 59), (9, 17), dow=(1, 5), step=15)]),
            "cron */15 9-17 * * 1-5",
        ),
        (ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=6))]), "every 6h"),
        (
            ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=90))]),
            "every 1m30s",
        ),
    ],
)
def test_timetables_read_back(spec, text):
    assert _when(spec) == text


def test_exactly_one_timetable_is_taken():
    assert timetable("0 3 * * *", None).cron == "0 3 * * *"
    assert timetable(None, 2000).every == timedelta(seconds=2)
    for cron, every in ((None, None), ("0 3 * * *", 1000), ("3 * *", None), (None, 500)):
        with pytest.raises(UsageError):
            timetable(cron, every)
