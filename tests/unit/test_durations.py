"""Durations: the spellings runbooks use, and the ones they must not."""

import pytest

from runner.durations import format_ms, is_duration, parse_ms


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("500ms", 500),
        ("30s", 30_000),
        ("10m", 600_000),
        ("1h30m", 5_400_000),
        ("24h", 86_400_000),
        ("7d", 604_800_000),
        ("1m30s", 90_000),
        ("0s", 0),
    ],
)
def test_valid_durations(text, ms):
    """Every documented spelling (docs/reference.md) parses to milliseconds, and back."""
    assert parse_ms(text) == ms
    assert parse_ms(format_ms(ms)) == ms


@pytest.mark.parametrize("text", ["", "10", "1h30", "30m1h", "10 m", "1.5h", "10mins", "-1s", "m"])
def test_invalid_durations(text):
    """Anything else is refused with advice."""
    assert not is_duration(text)
    with pytest.raises(ValueError, match="falling order"):
        parse_ms(text)
