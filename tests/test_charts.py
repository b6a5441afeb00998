"""The numbers on a chart's axis."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from helpdesk.charts import axis_ticks


@pytest.mark.parametrize("top, ticks", [
    (0, [0, 1]),  # nothing to count yet: an axis still
    (1, [0, 1]),
    (5, [0, 1, 2, 3, 4, 5]),
    (7, [0, 2, 4, 6, 8]),
    (1234, [0, 500, 1000, 1500]),
    (1_000_000, [0, 200_000, 400_000, 600_000, 800_000, 1_000_000]),
])
def test_ticks_are_round_steps_from_nought_past_the_top(top, ticks):
    assert axis_ticks(top) == ticks


@given(st.integers(min_value=1, max_value=10**12))
def test_every_count_fits_below_the_last_tick_in_at_most_five_round_steps(top):
    ticks = axis_ticks(top)
    step = ticks[1]
    assert ticks[0] == 0 and ticks[-1] >= top > ticks[-2]
    assert len(ticks) - 1 <= 5
    assert ticks == [i * step for i in range(len(ticks))]
    assert str(step).rstrip("0") in ("1", "2", "5")
