"""The arithmetic of a fan-out, and the rules of live control (pure functions)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from runner.contract.messages import ControlRequest
from runner.engine import control
from runner.plan import waves
from runner.plan.model import Wave


def spec(
    name: str,
    size: int | None = None,
    percent: float | None = None,
    budget: int | None = None,
    budget_percent: float | None = None,
) -> Wave:
    return Wave(
        name=name,
        size=size,
        size_percent=percent,
        max_failures=budget,
        max_failures_percent=budget_percent,
    )


def sizes(total: int, specs: list[Wave]) -> list[tuple[str, int]]:
    return [(b.name, b.end - b.start) for b in waves.bounds(total, specs)]


def test_cumulative_sizes_from_the_docs():
    """50 hosts with waves `1, 10%, 100%` make waves of 1, 4 and 45, in order."""
    found = waves.bounds(
        50, [spec("canary", 1), spec("staged", None, 10), spec("fleet", None, 100)]
    )
    assert [(b.name, b.start, b.end, b.spec) for b in found] == [
        ("canary", 0, 1, 0),
        ("staged", 1, 5, 1),
        ("fleet", 5, 50, 2),
    ]


def test_percentages_round_up_and_the_last_wave_reaches_the_end():
    """A percentage rounds up; the last wave reaches the end whatever its size says."""
    assert sizes(7, [spec("a", None, 10), spec("b", None, 50), spec("c", 5)]) == [
        ("a", 1),
        ("b", 3),
        ("c", 3),  # the last wave always extends to the whole list
    ]


def test_a_short_list_leaves_out_waves_that_would_be_empty():
    """A wave that would hold no item on a short list is left out."""
    assert sizes(3, [spec("canary", 1), spec("staged", None, 10), spec("fleet", None, 100)]) == [
        ("canary", 1),
        ("fleet", 2),
    ]
    assert sizes(1, [spec("canary", 5), spec("fleet", None, 100)]) == [("canary", 1)]


def test_without_waves_the_whole_list_is_one_wave():
    """No `waves`: one wave named `all` (none for an empty list)."""
    assert sizes(12, []) == [("all", 12)]
    assert sizes(0, []) == []


@pytest.mark.parametrize(
    ("size", "count", "percent", "expected"),
    [
        (1, None, 5.0, 0),  # a canary of 1 tolerates none
        (4, None, 5.0, 0),
        (45, None, 5.0, 2),  # rounded down
        (100, None, 100.0, 100),
        (10, 3, None, 3),
        (10, None, None, None),  # no budget
    ],
)
def test_failure_budget(size, count, percent, expected):
    """A count as written; a percentage of the wave rounded down; None means no budget."""
    amount = None if count is None and percent is None else waves.Amount(count, percent)
    assert waves.budget(size, amount) == expected


@pytest.mark.parametrize(
    ("first", "size", "wave", "step", "expected"),
    [
        # The first wave's default is 0, whatever the step's budget...
        (True, 1, spec("canary", 1), (1, None), 0),
        (True, 5, spec("canary", 5), (None, 50.0), 0),
        # ...unless the wave sets its own.
        (True, 5, spec("canary", 5, budget=1), (None, None), 1),
        # Later waves take the step's budget, or their own.
        (False, 45, spec("fleet", None, 100), (None, 5.0), 2),
        (False, 45, spec("fleet", None, 100, budget_percent=10.0), (None, 5.0), 4),
        (False, 45, spec("fleet", None, 100, budget=0), (3, None), 0),
        (False, 45, spec("fleet", None, 100), (None, None), None),
        # Without `waves` the whole list is one wave, with the step's budget.
        (True, 12, None, (2, None), 2),
    ],
)
def test_per_wave_budgets(first, size, wave, step, expected):
    """Per-wave failure budgets: the wave's own, else the step's; the first wave's is 0."""
    assert waves.wave_budget(first, size, wave, step[0], step[1]) == expected


def test_runs_before_per_wave_budgets_keep_the_steps_budget_on_the_first_wave():
    """A run started by an older version replays with the budget it had."""
    found = waves.wave_budget(True, 1, spec("canary", 1), 1, None, first_defaults_to_zero=False)
    assert found == 1


def test_amounts_are_counts_or_percentages():
    """`5` and `"10%"` parse; anything else is left to the schema check."""
    assert waves.parse_amount(5) == waves.Amount(count=5)
    assert waves.parse_amount("12.5%") == waves.Amount(percent=12.5)
    assert waves.parse_amount(True) is None
    assert waves.parse_amount("ten") is None
    assert waves.cumulative_end(50, waves.Amount(percent=10)) == 5
    assert waves.cumulative_end(7, waves.Amount(percent=10)) == 1


def test_batches_split_by_count_and_by_bytes():
    """At most 1,000 items and 1 MB a batch; an oversized item goes alone."""
    assert waves.batches([1] * 2500) == [(0, 1000), (1000, 2000), (2000, 2500)]
    assert waves.batches([400, 400, 400, 400], max_bytes=1000) == [(0, 2), (2, 4)]
    # An item larger than the byte limit still goes alone in a batch of its own.
    assert waves.batches([10, 5000, 10], max_bytes=1000) == [(0, 1), (1, 2), (2, 3)]
    assert waves.batches([]) == []


def test_item_names():
    """A string item is its own name; anything else is its JSON with sorted keys."""
    assert waves.item_key("host-01") == "host-01"
    assert waves.item_key({"name": "db", "az": 1}) == '{"az":1,"name":"db"}'
    assert waves.item_key(7) == "7"


def test_fanout_concurrency_is_bounded():
    """Items at once: the step's, bounded by the run's and by 1,000."""
    assert control.fanout_concurrency(None, 500) == 500
    assert control.fanout_concurrency(20, 10) == 10  # the run's concurrency bounds it
    assert control.fanout_concurrency(5000, 5000) == waves.MAX_CONCURRENCY


def refusal(request: dict, *, paged: bool = False, **state) -> str | None:
    campaign = SimpleNamespace(
        paged=paged,
        skipped_names={f"s{i}" for i in range(9_500)} if paged else set(),
        keys=["h1", "h2", "h3"],
        finished_before=1,
        indexes=lambda names: (
            [int(n[1:]) - 1 for n in names if n in ("h1", "h2", "h3")],
            [n for n in names if n not in ("h1", "h2", "h3")],
        ),
    )
    args = {
        "run_status": "running",
        "paused": False,
        "fanout_steps": {"patch": "running", "later": "pending", "done": "succeeded"},
        "started": {"patch": campaign},
        "run_limit": 20,
        **state,
    }
    parsed = ControlRequest.parse({"by": "ops", **request})
    if isinstance(parsed, str):  # what does not read as a request is refused where it arrives
        return parsed
    return control.refusal(parsed, **args)


@pytest.mark.parametrize(
    ("request_", "state", "reason"),
    [
        ({"action": "pause"}, {}, None),
        ({"action": "pause"}, {"paused": True}, "already paused"),
        ({"action": "resume"}, {}, "not paused"),
        ({"action": "resume"}, {"paused": True}, None),
        ({"action": "pause"}, {"run_status": "succeeded"}, "the run is succeeded"),
        ({"action": "explode"}, {}, "unknown action"),
        ({"action": "pause", "by": ""}, {}, "say who you are"),
        ({"action": "concurrency", "step": "patch", "concurrency": 5}, {}, None),
        ({"action": "concurrency", "step": "later", "concurrency": 5}, {}, None),
        ({"action": "concurrency", "step": "done", "concurrency": 5}, {}, "already succeeded"),
        ({"action": "concurrency", "step": "nope", "concurrency": 5}, {}, "not a fan-out step"),
        ({"action": "concurrency", "step": "patch", "concurrency": 0}, {}, "at least 1"),
        ({"action": "concurrency", "step": "patch", "concurrency": True}, {}, "whole number"),
        ({"action": "concurrency", "step": "patch", "concurrency": 21}, {}, "limit of 20"),
        ({"action": "skip", "step": "patch", "items": ["h3"]}, {}, None),
        ({"action": "skip", "step": "patch", "items": ["h9"]}, {}, "no item 'h9'"),
        ({"action": "skip", "step": "patch", "items": ["h1"]}, {}, "has already run"),
        ({"action": "skip", "step": "patch", "items": []}, {}, "name the items"),
        ({"action": "skip", "step": "later", "items": ["h1"]}, {}, "has not started"),
    ],
)
def test_control_refusals(request_, state, reason):
    """Every control request the validator must refuse, with its reason."""
    found = refusal(request_, **state)
    if reason is None:
        assert found is None
    else:
        assert found is not None and reason in found


def test_inventory_items_go_by_their_names_when_every_one_has_its_own():
    hosts = [{"name": "web-1", "address": "10.0.0.1"}, {"name": "web-2", "address": "10.0.0.2"}]
    assert waves.names_items(hosts)
    assert [waves.item_key(h, named=True) for h in hosts] == ["web-1", "web-2"]
    assert waves.item_key(hosts[0]) == '{"address":"10.0.0.1","name":"web-1"}'
    # every name an item was ever recorded under, for a redrive of an older run
    assert waves.item_names(hosts[0]) == {"web-1", '{"address":"10.0.0.1","name":"web-1"}'}
    # not when a name repeats, one is missing, or it is not text
    assert not waves.names_items([*hosts, {"name": "web-1"}])
    assert not waves.names_items([*hosts, {"address": "10.0.0.3"}])
    assert not waves.names_items([{"name": 7}])
    assert not waves.names_items(["web-1"])
    assert waves.item_key("web-1", named=True) == "web-1"


def test_skip_in_a_fan_out_from_a_file_is_bounded_not_looked_up():
    """The run cannot tell the names of items it has not read: any name is accepted,
    within bounds that keep the names carried to every batch small."""
    skip = {"action": "skip", "step": "patch"}
    assert refusal({**skip, "items": ["h1", "no-such-host"]}, paged=True) is None
    assert "at most 1000" in str(refusal({**skip, "items": ["x"] * 1001}, paged=True))
    # 9,500 skipped already: 600 more would pass 10,000 in all.
    many = [f"n{i}" for i in range(600)]
    assert "10000 in all" in str(refusal({**skip, "items": many}, paged=True))
    assert "1024 characters" in str(refusal({**skip, "items": ["x" * 1025]}, paged=True))
