"""The statistics of experiments, on scipy and statsmodels — numbers in, numbers out (no
database here; the analysis reads the per-variant sums with SQL and hands them over).

Every test compares a treatment with the control and reports the absolute and the relative
lift with their confidence intervals (the relative one by the delta method), a p-value and
the method used:
- **means** (count and sum metrics): Welch's t-test (unequal variances, Welch–Satterthwaite
  degrees of freedom);
- **proportions** (conversion metrics): the two-proportion z-test (pooled under the null,
  as statsmodels' `proportions_ztest`) with Wald intervals;
- **sequential**: always-valid p-values and confidence sequences (the asymptotic confidence
  sequences of Waudby-Smith et al. 2023, arXiv:2103.06476, as GrowthBook uses them), so
  results may be watched every day without inflating false positives; tuned to be tightest
  around `tuning` units;
- **CUPED**: the metric adjusted by its pre-exposure value, θ = cov(pre, post) / var(pre)
  pooled over the variants, computed from sufficient statistics; the variance reduction is
  reported (≈ ρ² for a pre/post correlation ρ);
- **several variants**: the χ² test of independence of conversions; **SRM**: the χ²
  goodness-of-fit of the units per variant against the planned weights, flagged at
  p < 0.001; **Holm**'s correction across metrics and variants; **power**: units needed for a
  minimum detectable effect, and the days that takes at the current traffic."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sp_stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower, TTestIndPower
from statsmodels.stats.proportion import proportion_effectsize, proportions_ztest

ALPHA = 0.05
SRM_ALPHA = 0.001
SEQUENTIAL_TUNING = 5_000


class NotEnoughData(ValueError):
    """A comparison needs at least two units per variant and some variation (and a
    non-zero control mean for a relative lift)."""


@dataclass(frozen=True, slots=True)
class Moments:
    """A variant's metric: units, mean and sample variance (n − 1 in the denominator)."""

    n: int
    mean: float
    variance: float

    @classmethod
    def of(cls, values: Sequence[float] | np.ndarray) -> Moments:
        x = np.asarray(values, dtype=np.float64)
        return cls(len(x), float(x.mean()) if len(x) else 0.0,
                   float(x.var(ddof=1)) if len(x) > 1 else 0.0)  # fmt: skip

    @classmethod
    def from_sums(cls, n: int, total: float, total_squares: float) -> Moments:
        """From n, Σx and Σx² (what one SQL aggregate returns)."""
        if n < 2:
            return cls(n, total / n if n else 0.0, 0.0)
        mean = total / n
        variance = max(0.0, (total_squares - n * mean * mean) / (n - 1))
        return cls(n, mean, variance)

    @classmethod
    def conversions(cls, converted: int, n: int) -> Moments:
        """A 0/1 metric: the mean is the rate, the variance p(1 − p) · n / (n − 1)."""
        p = converted / n if n else 0.0
        return cls(n, p, p * (1 - p) * n / (n - 1) if n > 1 else 0.0)

    @property
    def se2(self) -> float:
        """The squared standard error of the mean."""
        return self.variance / self.n if self.n else math.inf


@dataclass(frozen=True, slots=True)
class Lift:
    """A treatment against the control."""

    method: str
    absolute: float
    absolute_ci: tuple[float, float]
    relative: float | None  # None when the control's mean is 0
    relative_ci: tuple[float, float] | None
    p_value: float
    statistic: float
    alpha: float

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha


def _check(control: Moments, treatment: Moments) -> None:
    if control.n < 2 or treatment.n < 2:
        raise NotEnoughData("each variant needs at least 2 units")
    if control.variance + treatment.variance <= 0:
        raise NotEnoughData("the metric does not vary: every unit has the same value")


def relative_se(control: Moments, treatment: Moments) -> float | None:
    """Standard error of treatment/control − 1 by the delta method (independent groups)."""
    if control.mean == 0:
        return None
    mc, mt = control.mean, treatment.mean
    return math.sqrt(treatment.se2 / mc**2 + mt**2 * control.se2 / mc**4)


def welch_df(control: Moments, treatment: Moments) -> float:
    a, b = treatment.se2, control.se2
    denominator = a * a / (treatment.n - 1) + b * b / (control.n - 1)
    return (a + b) ** 2 / denominator if denominator > 0 else math.inf


def welch(control: Moments, treatment: Moments, alpha: float = ALPHA) -> Lift:
    """Welch's t-test of the difference in means, with t intervals on the absolute and the
    relative lift (the same degrees of freedom)."""
    _check(control, treatment)
    result = sp_stats.ttest_ind_from_stats(
        treatment.mean, math.sqrt(treatment.variance), treatment.n,
        control.mean, math.sqrt(control.variance), control.n, equal_var=False,
    )  # fmt: skip
    df = welch_df(control, treatment)
    q = float(sp_stats.t.ppf(1 - alpha / 2, df))
    diff = treatment.mean - control.mean
    se = math.sqrt(treatment.se2 + control.se2)
    rel_se = relative_se(control, treatment)
    relative = treatment.mean / control.mean - 1 if control.mean else None
    return Lift(
        method="welch",
        absolute=diff,
        absolute_ci=(diff - q * se, diff + q * se),
        relative=relative,
        relative_ci=(relative - q * rel_se, relative + q * rel_se)
        if relative is not None and rel_se is not None else None,
        p_value=float(result.pvalue),
        statistic=float(result.statistic),
        alpha=alpha,
    )  # fmt: skip


def proportions(
    control_converted: int,
    control_n: int,
    treatment_converted: int,
    treatment_n: int,
    alpha: float = ALPHA,
) -> Lift:
    """The two-proportion z-test (pooled standard error under the null), Wald intervals on
    the difference and, by the delta method, on the relative lift."""
    control = Moments.conversions(control_converted, control_n)
    treatment = Moments.conversions(treatment_converted, treatment_n)
    _check(control, treatment)
    statistic, p_value = proportions_ztest(
        [treatment_converted, control_converted], [treatment_n, control_n]
    )
    pc, pt = control.mean, treatment.mean
    se = math.sqrt(pt * (1 - pt) / treatment_n + pc * (1 - pc) / control_n)
    z = float(sp_stats.norm.ppf(1 - alpha / 2))
    diff = pt - pc
    relative = pt / pc - 1 if pc else None
    rel_se = (
        math.sqrt(pt * (1 - pt) / treatment_n / pc**2 + pt**2 * pc * (1 - pc) / control_n / pc**4)
        if pc
        else None
    )
    return Lift(
        method="two-proportion z",
        absolute=diff,
        absolute_ci=(diff - z * se, diff + z * se),
        relative=relative,
        relative_ci=(relative - z * rel_se, relative + z * rel_se)
        if relative is not None and rel_se is not None else None,
        p_value=float(p_value),
        statistic=float(statistic),
        alpha=alpha,
    )  # fmt: skip


# ---- sequential -----------------------------------------------------------------------------


def sequential_rho(alpha: float, tuning: float) -> float:
    """The mixture's spread, chosen so the sequence is tightest around `tuning` units."""
    if tuning <= 0:
        raise ValueError("the tuning parameter must be positive")
    a = -2 * math.log(alpha)
    return math.sqrt((a + math.log(a + 1)) / tuning)


def sequential_halfwidth(se2: float, n: int, alpha: float, tuning: float) -> float:
    """Half-width of the two-sided asymptotic confidence sequence for an estimate whose
    squared standard error is `se2` after `n` units in all."""
    rho = sequential_rho(alpha, tuning)
    s2 = se2 * n  # the per-unit variance of the estimate
    r = n * rho * rho + 1
    return math.sqrt(s2) * math.sqrt(2 * r * math.log(math.sqrt(r) / alpha) / (n * rho) ** 2)


def sequential_p_value(estimate: float, se2: float, n: int, alpha: float, tuning: float) -> float:
    """The always-valid p-value: the inverse of the mixture e-value, capped at 1."""
    rho = sequential_rho(alpha, tuning)
    if se2 <= 0:
        return 0.0 if estimate else 1.0
    z2 = estimate * estimate / se2
    r = n * rho * rho + 1
    # log of the Gaussian mixture martingale: ρ²n·z² / (2(1 + nρ²)) − ½ log(1 + nρ²); it
    # crosses log(1/α) exactly when 0 leaves the confidence sequence
    log_e = rho * rho * n * z2 / (2 * r) - 0.5 * math.log(r)
    return float(min(1.0, math.exp(-log_e)))


def sequential(
    control: Moments, treatment: Moments, alpha: float = ALPHA, tuning: float = SEQUENTIAL_TUNING
) -> Lift:
    """Always-valid p-value and confidence sequences on the absolute and relative lift: valid
    at whatever moment the results are read, however often."""
    _check(control, treatment)
    n = control.n + treatment.n
    diff = treatment.mean - control.mean
    se2 = treatment.se2 + control.se2
    half = sequential_halfwidth(se2, n, alpha, tuning)
    rel_se = relative_se(control, treatment)
    relative = treatment.mean / control.mean - 1 if control.mean else None
    rel_half = sequential_halfwidth(rel_se**2, n, alpha, tuning) if rel_se is not None else None
    return Lift(
        method="sequential",
        absolute=diff,
        absolute_ci=(diff - half, diff + half),
        relative=relative,
        relative_ci=(relative - rel_half, relative + rel_half)
        if relative is not None and rel_half is not None else None,
        p_value=sequential_p_value(diff, se2, n, alpha, tuning),
        statistic=diff / math.sqrt(se2),
        alpha=alpha,
    )  # fmt: skip


# ---- CUPED ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PrePost:
    """A variant's sufficient statistics of the metric (y) and its pre-exposure value (x)."""

    n: int
    sum_y: float
    sum_y2: float
    sum_x: float
    sum_x2: float
    sum_xy: float

    @classmethod
    def of(cls, y: Sequence[float] | np.ndarray, x: Sequence[float] | np.ndarray) -> PrePost:
        ya, xa = np.asarray(y, dtype=np.float64), np.asarray(x, dtype=np.float64)
        return cls(len(ya), float(ya.sum()), float((ya * ya).sum()), float(xa.sum()),
                   float((xa * xa).sum()), float((xa * ya).sum()))  # fmt: skip


@dataclass(frozen=True, slots=True)
class Cuped:
    theta: float
    adjusted: list[Moments]  # per variant, in the order given
    unadjusted: list[Moments]
    variance_reduction: float  # 1 − Σ adjusted variance / Σ unadjusted variance


def cuped(variants: Sequence[PrePost]) -> Cuped:
    """Adjust each variant's metric by its pre-exposure value: y − θ(x − x̄), with θ and x̄
    pooled over every variant (so the adjustment is the same for all, and the lift unbiased)."""
    n = sum(v.n for v in variants)
    if n < 3:
        raise NotEnoughData("CUPED needs at least 3 units")
    mean_x = sum(v.sum_x for v in variants) / n
    mean_y = sum(v.sum_y for v in variants) / n
    var_x = (sum(v.sum_x2 for v in variants) - n * mean_x * mean_x) / (n - 1)
    cov = (sum(v.sum_xy for v in variants) - n * mean_x * mean_y) / (n - 1)
    theta = cov / var_x if var_x > 0 else 0.0
    adjusted, unadjusted = [], []
    for v in variants:
        if v.n < 2:
            raise NotEnoughData("each variant needs at least 2 units")
        my, mx = v.sum_y / v.n, v.sum_x / v.n
        vy = (v.sum_y2 - v.n * my * my) / (v.n - 1)
        vx = (v.sum_x2 - v.n * mx * mx) / (v.n - 1)
        cxy = (v.sum_xy - v.n * mx * my) / (v.n - 1)
        unadjusted.append(Moments(v.n, my, max(0.0, vy)))
        adjusted.append(Moments(v.n, my - theta * (mx - mean_x),
                                max(0.0, vy - 2 * theta * cxy + theta * theta * vx)))  # fmt: skip
    before = sum(m.variance for m in unadjusted)
    after = sum(m.variance for m in adjusted)
    return Cuped(theta, adjusted, unadjusted, 1 - after / before if before > 0 else 0.0)


# ---- several variants, SRM, multiple testing, power -----------------------------------------


def chi_square_conversions(converted: Sequence[int], units: Sequence[int]) -> tuple[float, float]:
    """χ² test of independence of conversion across any number of variants: (χ², p)."""
    table = np.array([[c, n - c] for c, n in zip(converted, units, strict=True)], dtype=float)
    if table.shape[0] < 2 or (table.sum(axis=0) == 0).any():
        raise NotEnoughData("needs two variants and both outcomes")
    statistic, p_value, _, _ = sp_stats.chi2_contingency(table, correction=False)
    return float(statistic), float(p_value)


@dataclass(frozen=True, slots=True)
class Srm:
    statistic: float
    p_value: float
    expected: list[float]
    flagged: bool


def srm(units: Sequence[int], weights: Sequence[float], alpha: float = SRM_ALPHA) -> Srm:
    """Sample-ratio mismatch: are the units per variant what the weights plan? Flagged at
    p < 0.001 (a broken assignment or exposure log, not chance)."""
    total = sum(units)
    share = np.asarray(weights, dtype=float) / sum(weights)
    expected = share * total
    if total == 0:
        return Srm(0.0, 1.0, expected.tolist(), False)
    statistic, p_value = sp_stats.chisquare(np.asarray(units, dtype=float), expected)
    return Srm(float(statistic), float(p_value), expected.tolist(), bool(p_value < alpha))


def holm(p_values: Sequence[float], alpha: float = ALPHA) -> list[float]:
    """Holm–Bonferroni adjusted p-values (controls the family-wise error rate across metrics
    and variants)."""
    if not p_values:
        return []
    _, adjusted, _, _ = multipletests(list(p_values), alpha=alpha, method="holm")
    return [float(p) for p in adjusted]


def winsorize(values: Sequence[float] | np.ndarray, percentile: float) -> np.ndarray:
    """Values above the given percentile (e.g. 99) set to it: a few huge orders must not
    decide a revenue experiment."""
    x = np.asarray(values, dtype=np.float64)
    if not len(x) or percentile >= 100:
        return x
    return np.minimum(x, np.percentile(x, percentile))


@dataclass(frozen=True, slots=True)
class Power:
    per_variant: int
    total: int
    days: float | None  # at the given traffic; None without it


def sample_size_proportion(
    baseline: float,
    mde_relative: float,
    *,
    variants: int = 2,
    alpha: float = ALPHA,
    power: float = 0.8,
    daily_units: float | None = None,
) -> Power:
    """Units per variant to detect a relative change `mde_relative` of a conversion rate
    `baseline` (Cohen's h, normal approximation), and the days at `daily_units` exposures."""
    target = baseline * (1 + mde_relative)
    if not 0 < baseline < 1 or not 0 < target < 1:
        raise ValueError("the rate and the rate it would become must lie between 0 and 1")
    effect = abs(float(proportion_effectsize(target, baseline)))
    n = NormalIndPower().solve_power(effect_size=effect, alpha=alpha, power=power, ratio=1.0)
    return _power(math.ceil(float(n)), variants, daily_units)


def sample_size_mean(
    mean: float,
    sd: float,
    mde_relative: float,
    *,
    variants: int = 2,
    alpha: float = ALPHA,
    power: float = 0.8,
    daily_units: float | None = None,
) -> Power:
    """Units per variant to detect a relative change of a mean (two-sample t-test)."""
    if sd <= 0 or mean == 0 or mde_relative == 0:
        raise ValueError("needs a non-zero mean and effect and a positive standard deviation")
    effect = abs(mean * mde_relative) / sd
    n = TTestIndPower().solve_power(effect_size=effect, alpha=alpha, power=power, ratio=1.0)
    return _power(math.ceil(float(n)), variants, daily_units)


def _power(per_variant: int, variants: int, daily_units: float | None) -> Power:
    total = per_variant * variants
    days = total / daily_units if daily_units else None
    return Power(per_variant, total, round(days, 1) if days is not None else None)
