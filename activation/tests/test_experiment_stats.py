"""The experiments' statistics against scipy and statsmodels on fixed data (to 1e-6), and
seeded simulations of what the statistics promise: A/A tests peeked at daily keep the
sequential false-positive rate at or under 5 % (and the naive one visibly above it), a real
5 % lift at the planned sample size is found at least 80 % of the time, SRM is flagged at
51/49 over 200k units and not at 50/50, CUPED with a pre/post correlation of 0.5 removes
about a quarter of the variance."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from activation.experiments import stats
from activation.experiments.stats import Moments, NotEnoughData, PrePost

RNG = np.random.default_rng(20261204)
CONTROL = RNG.lognormal(3.0, 0.8, size=1_200)
TREATMENT = RNG.lognormal(3.05, 0.85, size=1_100)


def test_welch_matches_scipy_and_statsmodels() -> None:
    lift = stats.welch(Moments.of(CONTROL), Moments.of(TREATMENT))
    expected = sp_stats.ttest_ind(TREATMENT, CONTROL, equal_var=False)
    assert lift.p_value == pytest.approx(expected.pvalue, abs=1e-9)
    assert lift.statistic == pytest.approx(expected.statistic, abs=1e-9)
    low, high = CompareMeans(DescrStatsW(TREATMENT), DescrStatsW(CONTROL)).tconfint_diff(
        alpha=0.05, usevar="unequal"
    )
    assert lift.absolute_ci == pytest.approx((low, high), abs=1e-6)
    assert lift.absolute == pytest.approx(TREATMENT.mean() - CONTROL.mean(), abs=1e-9)
    assert lift.relative == pytest.approx(TREATMENT.mean() / CONTROL.mean() - 1, abs=1e-12)
    # the delta method's interval contains the lift and is about as wide, relatively, as the
    # absolute one
    assert lift.relative_ci is not None and lift.relative is not None
    assert lift.relative_ci[0] < lift.relative < lift.relative_ci[1]
    width = (lift.relative_ci[1] - lift.relative_ci[0]) * CONTROL.mean()
    assert width == pytest.approx(high - low, rel=0.15)


def test_moments_from_sql_sums_equal_moments_of_values() -> None:
    from_sums = Moments.from_sums(len(CONTROL), float(CONTROL.sum()), float((CONTROL**2).sum()))
    direct = Moments.of(CONTROL)
    assert from_sums.n == direct.n
    assert from_sums.mean == pytest.approx(direct.mean, rel=1e-12)
    assert from_sums.variance == pytest.approx(direct.variance, rel=1e-9)


def test_proportions_match_statsmodels() -> None:
    lift = stats.proportions(412, 5_000, 468, 5_100)
    z, p = proportions_ztest([468, 412], [5_100, 5_000])
    assert lift.statistic == pytest.approx(z, abs=1e-9)
    assert lift.p_value == pytest.approx(p, abs=1e-9)
    low, high = confint_proportions_2indep(468, 5_100, 412, 5_000, method="wald", compare="diff")
    assert lift.absolute_ci == pytest.approx((low, high), abs=1e-9)
    assert lift.relative == pytest.approx((468 / 5_100) / (412 / 5_000) - 1, abs=1e-12)


def test_chi_square_and_holm_match_scipy_and_statsmodels() -> None:
    converted, units = [120, 140, 165], [1_000, 1_010, 990]
    statistic, p = stats.chi_square_conversions(converted, units)
    table = [[c, n - c] for c, n in zip(converted, units, strict=True)]
    expected = sp_stats.chi2_contingency(table, correction=False)
    assert statistic == pytest.approx(expected.statistic, abs=1e-9)
    assert p == pytest.approx(expected.pvalue, abs=1e-12)
    ps = [0.01, 0.04, 0.03, 0.2]
    assert stats.holm(ps) == pytest.approx(list(multipletests(ps, method="holm")[1]), abs=1e-12)


def test_bad_input_is_refused_clearly() -> None:
    with pytest.raises(NotEnoughData, match="at least 2 units"):
        stats.welch(Moments(1, 3.0, 0.0), Moments.of(TREATMENT))
    with pytest.raises(NotEnoughData, match="does not vary"):
        stats.welch(Moments(10, 1.0, 0.0), Moments(10, 1.0, 0.0))
    with pytest.raises(ValueError, match="between 0 and 1"):
        stats.sample_size_proportion(0.9, 0.2)
    with pytest.raises(ValueError, match="tuning parameter"):
        stats.sequential_rho(0.05, 0)


def test_sequential_interval_is_wider_and_agrees_with_its_p_value() -> None:
    control, treatment = Moments.of(CONTROL), Moments.of(TREATMENT)
    fixed = stats.welch(control, treatment)
    always = stats.sequential(control, treatment)
    assert (
        always.absolute_ci[0] < fixed.absolute_ci[0] < fixed.absolute_ci[1] < always.absolute_ci[1]
    )
    # duality: 0 outside the confidence sequence exactly when the p-value is under alpha
    for shift in np.linspace(-8, 8, 33):
        moved = Moments(treatment.n, treatment.mean + shift, treatment.variance)
        result = stats.sequential(control, moved)
        outside = not (result.absolute_ci[0] <= 0 <= result.absolute_ci[1])
        assert outside == (result.p_value < 0.05), shift


def _peeking(
    n_experiments: int, looks: int, per_look: int, effect: float, seed: int
) -> dict[str, float]:
    """Simulated experiments (per-unit values ~ N(mean, 1)) read after every look: the share
    where any look declared a difference, naively (Welch) and sequentially."""
    rng = np.random.default_rng(seed)
    naive = always = 0
    for _ in range(n_experiments):
        a = rng.normal(0.0, 1.0, size=looks * per_look)
        b = rng.normal(effect, 1.0, size=looks * per_look)
        seen_naive = seen_always = False
        for look in range(1, looks + 1):
            n = look * per_look
            ma, mb = Moments.of(a[:n]), Moments.of(b[:n])
            seen_naive |= stats.welch(ma, mb).p_value < 0.05
            seen_always |= stats.sequential(ma, mb, tuning=looks * per_look).p_value < 0.05
        naive += seen_naive
        always += seen_always
    return {"naive": naive / n_experiments, "sequential": always / n_experiments}


def test_peeking_every_day_keeps_sequential_false_positives_at_5_percent() -> None:
    rates = _peeking(n_experiments=300, looks=20, per_look=100, effect=0.0, seed=1)
    print(rates)
    assert rates["sequential"] <= 0.05
    assert rates["naive"] >= 0.12  # the control: peeking at a fixed-horizon test misleads


def test_a_real_lift_at_the_planned_size_is_found_80_percent_of_the_time() -> None:
    # a 5 % relative lift of a mean of 1 (sd 0.5): the calculator plans the sample size
    plan = stats.sample_size_mean(1.0, 0.5, 0.05)
    rng = np.random.default_rng(2)
    found = 0
    for _ in range(300):
        a = rng.normal(1.0, 0.5, size=plan.per_variant)
        b = rng.normal(1.05, 0.5, size=plan.per_variant)
        found += stats.welch(Moments.of(a), Moments.of(b)).p_value < 0.05
    print(plan, found / 300)
    assert found / 300 >= 0.76  # 80 % power, with the noise of 300 simulations


def test_srm_flags_51_49_and_not_50_50() -> None:
    assert stats.srm([102_000, 98_000], [50, 50]).flagged
    assert not stats.srm([100_000, 100_000], [50, 50]).flagged
    rng = np.random.default_rng(3)
    draws = [rng.binomial(200_000, 0.5) for _ in range(200)]
    false_alarms = sum(stats.srm([d, 200_000 - d], [1, 1]).flagged for d in draws)
    assert false_alarms <= 2
    weighted = stats.srm([30_100, 69_900], [30, 70])
    assert not weighted.flagged and weighted.expected == pytest.approx([30_000, 70_000])


def test_cuped_with_correlation_one_half_cuts_a_quarter_of_the_variance() -> None:
    rng = np.random.default_rng(4)
    n = 20_000
    pre = rng.normal(10, 2, size=2 * n)
    post = 10 + 0.5 * (pre - 10) + rng.normal(0, math.sqrt(4 * 0.75), size=2 * n)
    post[n:] += 0.1  # the treatment's effect
    assert np.corrcoef(pre, post)[0, 1] == pytest.approx(0.5, abs=0.02)
    adjusted = stats.cuped([PrePost.of(post[:n], pre[:n]), PrePost.of(post[n:], pre[n:])])
    print(adjusted.variance_reduction, adjusted.theta)
    assert adjusted.variance_reduction == pytest.approx(0.25, abs=0.03)
    assert adjusted.theta == pytest.approx(0.5, abs=0.03)
    # the lift is unchanged on average, its interval narrower
    plain = stats.welch(adjusted.unadjusted[0], adjusted.unadjusted[1])
    better = stats.welch(adjusted.adjusted[0], adjusted.adjusted[1])
    assert better.absolute == pytest.approx(0.1, abs=0.03)
    narrower = (better.absolute_ci[1] - better.absolute_ci[0]) / (
        plain.absolute_ci[1] - plain.absolute_ci[0]
    )
    assert narrower == pytest.approx(math.sqrt(0.75), abs=0.03)


def test_power_matches_statsmodels_and_counts_days() -> None:
    plan = stats.sample_size_proportion(0.10, 0.10, daily_units=2_000)
    from statsmodels.stats.power import NormalIndPower
    from statsmodels.stats.proportion import proportion_effectsize

    h = abs(proportion_effectsize(0.11, 0.10))
    expected = NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8)
    assert plan.per_variant == math.ceil(expected)
    assert plan.total == 2 * plan.per_variant
    assert plan.days == pytest.approx(plan.total / 2_000, abs=0.05)


def test_winsorize_caps_the_largest_values() -> None:
    values = np.arange(1, 101, dtype=float)
    capped = stats.winsorize(values, 99)
    assert capped.max() == pytest.approx(np.percentile(values, 99))
    assert (capped[:98] == values[:98]).all()
