"""The numbers a chart's axis is labelled with. Pure: no Flask."""
from __future__ import annotations

import math


def axis_ticks(top: int, most: int = 5) -> list[int]:
    """Round values from 0 to at least ``top`` in equal steps of 1, 2 or 5 times a power of
    ten, at most ``most`` steps: what a reader can read a bar against (0, 500, 1000, 1500
    for 1,234)."""
    if top <= 0:
        return [0, 1]
    power = 1
    while True:
        for step in (power, 2 * power, 5 * power):
            steps = math.ceil(top / step)
            if steps <= most:
                return [i * step for i in range(steps + 1)]
        power *= 10
