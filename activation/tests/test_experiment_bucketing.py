"""Assignment is deterministic across processes, follows the weights, never moves a unit
when traffic is ramped up, keeps layers' experiments mutually exclusive and holds a stable
global holdout."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest
from scipy import stats as sp_stats

from activation.experiments import bucketing

UNITS = [f"user-{i}" for i in range(20_000)]
PROGRAM = """
import sys
from activation.experiments.bucketing import choose_variant
print(",".join(str(choose_variant("exp-42", f"user-{i}", [1, 1, 2], 0.5)) for i in range(500)))
"""


def test_the_same_answer_in_another_process() -> None:
    here = ",".join(
        str(bucketing.choose_variant("exp-42", f"user-{i}", [1, 1, 2], 0.5)) for i in range(500)
    )
    there = subprocess.run(  # noqa: S603 - our own interpreter and program
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert there == here


def test_variants_follow_their_weights() -> None:
    counts = Counter(bucketing.choose_variant("seed", u, [1, 1, 2]) for u in UNITS)
    observed = [counts[0], counts[1], counts[2]]
    expected = [5_000, 5_000, 10_000]
    assert sp_stats.chisquare(observed, expected).pvalue > 0.001
    assert counts[None] == 0


def test_ramping_up_never_moves_an_assigned_unit() -> None:
    early = {u: bucketing.choose_variant("ramp", u, [1, 1], 0.1) for u in UNITS}
    later = {u: bucketing.choose_variant("ramp", u, [1, 1], 0.5) for u in UNITS}
    assigned = [u for u, v in early.items() if v is not None]
    assert 0.08 < len(assigned) / len(UNITS) < 0.12
    assert all(later[u] == early[u] for u in assigned)
    assert 0.47 < sum(v is not None for v in later.values()) / len(UNITS) < 0.53


def test_layers_keep_experiments_mutually_exclusive_and_the_holdout_stable() -> None:
    ranges = bucketing.layer_ranges({"hero": 0.5, "checkout": 0.3})
    owners = Counter(bucketing.layer_slot("layer-1", u, ranges) for u in UNITS)
    assert set(owners) == {"hero", "checkout", None}
    assert owners["hero"] / len(UNITS) == pytest.approx(0.5, abs=0.02)
    assert owners["checkout"] / len(UNITS) == pytest.approx(0.3, abs=0.02)
    held = [u for u in UNITS if bucketing.in_holdout("ws-1", u, 5)]
    assert len(held) / len(UNITS) == pytest.approx(0.05, abs=0.006)
    assert held == [u for u in UNITS if bucketing.in_holdout("ws-1", u, 5)]
    # a bigger holdout contains the smaller one
    assert set(held) <= {u for u in UNITS if bucketing.in_holdout("ws-1", u, 10)}
    with pytest.raises(ValueError, match="at most all of its traffic"):
        bucketing.layer_ranges({"a": 0.7, "b": 0.4})
    with pytest.raises(ValueError, match="not all zero"):
        bucketing.variant_ranges([0, 0])
