"""Shared Hypothesis strategy for codec tests: a byte string cut into arbitrary pieces."""

from __future__ import annotations

from hypothesis import strategies as st


@st.composite
def partitions(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` cut at an arbitrary set of positions (the pieces join back to ``data``)."""
    cuts = draw(st.sets(st.integers(1, max(1, len(data) - 1)), max_size=len(data)))
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:])]
