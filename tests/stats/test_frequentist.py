from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from experiments.stats import frequentist as fq
from experiments.stats.summaries import Moments


def binary(successes: int, n: int) -> Moments:
    return Moments.from_values(np.r_[np.ones(successes), np.zeros(n - successes)])


def all_numbers(d: fq.Difference) -> list[float | None]:
    pairs = [d.abs_ci, d.rel_ci, d.newcombe_ci]
    flat = [v for p in pairs if p is not None for v in p]
    return [d.abs_diff, d.std_err, d.p_value, d.rel_lift, d.var_control, d.df, *flat]


PROPORTIONS = [(120, 1000, 150, 1000), (3, 40, 9, 35), (501, 5021, 540, 4979), (0, 50, 4, 50)]


@pytest.mark.parametrize(
    ("s_c", "n_c", "s_t", "n_t"), PROPORTIONS, ids=["medium", "small", "large", "zero-control"]
)
def test_conversion_matches_statsmodels(s_c: int, n_c: int, s_t: int, n_t: int) -> None:
    d = fq.compare_proportions(binary(s_c, n_c), binary(s_t, n_t), alpha=0.05)
    _, p_ref = proportions_ztest([s_t, s_c], [n_t, n_c])  # pooled SE by default
    assert d.p_value == pytest.approx(p_ref, rel=1e-9)
    wald = confint_proportions_2indep(s_t, n_t, s_c, n_c, method="wald", compare="diff")
    assert d.abs_ci == pytest.approx(wald, rel=1e-9)
    newcombe = confint_proportions_2indep(s_t, n_t, s_c, n_c, method="newcomb", compare="diff")
    assert d.newcombe_ci == pytest.approx(newcombe, rel=1e-9)
    assert d.abs_diff == pytest.approx(s_t / n_t - s_c / n_c)


def test_conversion_relative_lift_fieller() -> None:
    d = fq.compare_proportions(binary(120, 1000), binary(150, 1000), alpha=0.1)
    p_c, p_t = 0.12, 0.15
    v_c, v_t = p_c * (1 - p_c) / 1000, p_t * (1 - p_t) / 1000
    z = sps.norm.ppf(0.95)
    assert d.rel_lift == pytest.approx(0.25)
    assert (d.var_control, d.var_treatment) == pytest.approx((v_c, v_t))
    # Fieller: the ratios rho with (p_t - rho p_c)^2 = z^2 (v_t + rho^2 v_c) at the ends.
    for lift in d.rel_ci:  # type: ignore[union-attr]
        rho = 1 + lift
        assert (p_t - rho * p_c) ** 2 == pytest.approx(z**2 * (v_t + rho**2 * v_c))


WELCH_CASES = [
    (dict(loc=10, scale=3, size=200), dict(loc=10.8, scale=5, size=150)),
    (dict(loc=0, scale=1, size=5), dict(loc=1, scale=0.2, size=9)),
    (dict(loc=1e6, scale=1, size=300), dict(loc=1e6 + 0.2, scale=1.5, size=280)),
]


@pytest.mark.parametrize(("c", "t"), WELCH_CASES, ids=["unequal", "tiny", "large-mean"])
def test_welch_matches_scipy_and_statsmodels(c: dict[str, float], t: dict[str, float]) -> None:
    rng = np.random.default_rng(7)
    y_c, y_t = rng.normal(**c), rng.normal(**t)
    d = fq.compare_means(Moments.from_values(y_c), Moments.from_values(y_t), alpha=0.05)
    ref = sps.ttest_ind(y_t, y_c, equal_var=False)
    assert d.p_value == pytest.approx(ref.pvalue, rel=1e-7)
    assert d.abs_diff / d.std_err == pytest.approx(ref.statistic, rel=1e-7)
    cm = CompareMeans(DescrStatsW(y_t), DescrStatsW(y_c))
    assert d.abs_ci == pytest.approx(cm.tconfint_diff(alpha=0.05, usevar="unequal"), rel=1e-7)
    assert d.df == pytest.approx(ref.df, rel=1e-7)


def test_large_mean_precision_against_numpy_raw_values() -> None:
    """mean/sd = 1e6: sums of squares would lose every digit; shifted moments do not."""
    rng = np.random.default_rng(3)
    y_c = 1e6 + rng.normal(0, 1, 1000)
    y_t = 1e6 + 0.1 + rng.normal(0, 1, 1000)
    shift = [1e6 + 0.05]  # one per-metric reference for both variants, as SQL would use
    m_c, m_t = Moments.from_values(y_c, shift), Moments.from_values(y_t, shift)
    assert m_c.var() == pytest.approx(np.var(y_c, ddof=1), rel=1e-9)
    d = fq.compare_means(m_c, m_t, alpha=0.05)
    assert d.abs_diff == pytest.approx(y_t.mean() - y_c.mean(), rel=1e-8)
    assert d.p_value == pytest.approx(sps.ttest_ind(y_t, y_c, equal_var=False).pvalue, rel=1e-6)


def delta_ratio(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    r = num.sum() / den.sum()
    cov = np.cov(num, den, ddof=1)
    var = (cov[0, 0] - 2 * r * cov[0, 1] + r * r * cov[1, 1]) / (len(num) * den.mean() ** 2)
    return r, var


def test_ratio_delta_method_closed_form() -> None:
    rng = np.random.default_rng(11)
    den_c, den_t = rng.poisson(8, 800) + 1, rng.poisson(8, 700) + 1
    num_c, num_t = rng.binomial(den_c, 0.30), rng.binomial(den_t, 0.33)
    d = fq.compare_ratios(
        Moments.from_values(np.c_[num_c, den_c]),
        Moments.from_values(np.c_[num_t, den_t]),
        alpha=0.05,
    )
    (r_c, v_c), (r_t, v_t) = delta_ratio(num_c, den_c), delta_ratio(num_t, den_t)
    se = math.sqrt(v_c + v_t)
    assert d.abs_diff == pytest.approx(r_t - r_c)
    assert d.std_err == pytest.approx(se)
    assert d.p_value == pytest.approx(2 * sps.norm.sf(abs(r_t - r_c) / se))
    assert d.abs_ci == pytest.approx((r_t - r_c - 1.959964 * se, r_t - r_c + 1.959964 * se))
    assert d.rel_lift == pytest.approx((r_t - r_c) / r_c)
    assert (d.var_control, d.var_treatment) == pytest.approx((v_c, v_t))


@pytest.mark.parametrize("kind", ["conversion", "mean", "ratio"], ids=str)
def test_swapping_variants_flips_the_sign(kind: str) -> None:
    rng = np.random.default_rng(5)
    if kind == "conversion":
        a, b = binary(40, 300), binary(55, 310)
        compare = fq.compare_proportions
    elif kind == "mean":
        a, b = (Moments.from_values(rng.exponential(s, 200)) for s in (2.0, 2.4))
        compare = fq.compare_means
    else:
        a, b = (
            Moments.from_values(np.c_[rng.poisson(3, 90), rng.poisson(9, 90) + 1]) for _ in "ab"
        )
        compare = fq.compare_ratios
    ab, ba = compare(a, b, alpha=0.05), compare(b, a, alpha=0.05)
    assert ab.abs_diff == pytest.approx(-ba.abs_diff)
    assert ab.p_value == pytest.approx(ba.p_value)
    assert ab.abs_ci == pytest.approx((-ba.abs_ci[1], -ba.abs_ci[0]))
    if kind == "conversion":
        assert ab.newcombe_ci == pytest.approx((-ba.newcombe_ci[1], -ba.newcombe_ci[0]))


def test_zero_variance_gives_none_with_reason() -> None:
    same = Moments.from_values(np.full(50, 3.0))
    d = fq.compare_means(same, same, alpha=0.05)
    assert d.abs_diff == 0.0
    assert d.p_value is None
    assert d.abs_ci is None
    assert any("standard error is 0" in r for r in d.reasons)
    d = fq.compare_proportions(binary(0, 100), binary(0, 80), alpha=0.05)
    assert d.p_value is None
    assert d.abs_ci is None
    assert d.rel_lift is None
    assert d.newcombe_ci is not None  # the score interval stays defined


def test_separated_rates_keep_pooled_p_value() -> None:
    d = fq.compare_proportions(binary(0, 30), binary(30, 30), alpha=0.05)
    assert d.p_value is not None
    assert d.p_value < 1e-10
    assert d.abs_ci is None
    assert any("Wald" in r for r in d.reasons)


def test_control_mean_zero_makes_relative_lift_none() -> None:
    c = Moments.from_values(np.array([-1.0, 1.0, 0.0, -2.0, 2.0]))
    t = Moments.from_values(np.array([1.0, 2.0, 3.0, 0.5, 1.0]))
    d = fq.compare_means(c, t, alpha=0.05)
    assert d.rel_lift is None
    assert d.rel_ci is None
    assert d.p_value is not None
    assert any("control mean is 0" in r for r in d.reasons)


@pytest.mark.parametrize(
    "compare",
    [fq.compare_proportions, fq.compare_means],
    ids=["conversion", "mean"],
)
def test_empty_variant(compare: object) -> None:
    d = compare(Moments.empty(), binary(3, 10), alpha=0.05)  # type: ignore[operator]
    assert d.abs_diff is None
    assert d.p_value is None
    assert d.reasons == ("no units in control",)


def test_ratio_with_zero_denominator() -> None:
    c = Moments.from_values(np.c_[[0, 0, 0], [0, 0, 0]])
    t = Moments.from_values(np.c_[[1, 2, 0], [3, 3, 2]])
    d = fq.compare_ratios(c, t, alpha=0.05)
    assert d.abs_diff is None
    assert d.treatment_mean == pytest.approx(3 / 8)
    assert "denominator sum is 0 in control" in d.reasons[0]


def test_non_binary_conversion_is_rejected() -> None:
    with pytest.raises(ValueError, match="conversion rate must be in"):
        fq.compare_proportions(Moments.from_values(np.array([2.0, 3.0])), binary(1, 2), alpha=0.05)


@settings(max_examples=150, deadline=None)
@given(
    s_c=st.integers(0, 30), extra_c=st.integers(0, 30), s_t=st.integers(0, 30),
    extra_t=st.integers(0, 30), alpha=st.floats(0.001, 0.5),
)  # fmt: skip
def test_conversion_never_nan(s_c: int, extra_c: int, s_t: int, extra_t: int, alpha: float) -> None:
    n_c, n_t = s_c + extra_c, s_t + extra_t
    c = binary(s_c, n_c) if n_c else Moments.empty()
    t = binary(s_t, n_t) if n_t else Moments.empty()
    d = fq.compare_proportions(c, t, alpha=alpha)
    assert all(v is None or math.isfinite(v) for v in all_numbers(d))
    if d.p_value is not None:
        assert 0.0 <= d.p_value <= 1.0


values = st.lists(
    st.floats(-1e9, 1e9, allow_nan=False, allow_infinity=False), min_size=0, max_size=6
)


@settings(max_examples=150, deadline=None)
@given(y_c=values, y_t=values)
def test_means_never_nan(y_c: list[float], y_t: list[float]) -> None:
    d = fq.compare_means(
        Moments.from_values(np.array(y_c)), Moments.from_values(np.array(y_t)), alpha=0.05
    )
    assert all(v is None or math.isfinite(v) for v in all_numbers(d))
    if d.p_value is None and d.abs_diff is not None:
        assert d.reasons


@settings(max_examples=100, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=0, max_size=6),
    rows_t=st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=0, max_size=6),
)
def test_ratios_never_nan(rows: list[tuple[int, int]], rows_t: list[tuple[int, int]]) -> None:
    def moments(r: list[tuple[int, int]]) -> Moments:
        return Moments.from_values(np.array(r, dtype=float).reshape(-1, 2))

    d = fq.compare_ratios(moments(rows), moments(rows_t), alpha=0.05)
    assert all(v is None or math.isfinite(v) for v in all_numbers(d))
