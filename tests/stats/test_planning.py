from __future__ import annotations

import math

import pytest
from scipy import stats

from experiments.domain import AnalysisMethod, Correction, MarginType, MetricKind
from experiments.stats.planning import (
    comparison_alpha,
    guardrail_power,
    inflation_factor,
    plan_sample_size,
    plan_units,
)
from experiments.stats.power import Baseline, power, sample_size

BASE = Baseline.conversion(0.10)


def test_fixed_plan_is_the_power_calculation() -> None:
    assert plan_sample_size(BASE, mde=0.1) == sample_size(BASE, mde=0.1)


def test_three_treatments_plan_with_bonferroni_so_holm_keeps_its_power() -> None:
    weights = (0.25, 0.25, 0.25, 0.25)
    n = plan_sample_size(BASE, mde=0.1, weights=weights, correction=Correction.HOLM)
    assert n == sample_size(BASE, mde=0.1, weights=weights, alpha=0.05 / 3)
    assert power(BASE, effect=0.1, total_units=n, weights=weights, alpha=0.05 / 3) >= 0.8
    plain = plan_sample_size(BASE, mde=0.1, weights=weights, correction=Correction.NONE)
    assert plain < n
    assert comparison_alpha(0.05, 3, AnalysisMethod.BAYESIAN, Correction.NONE) == 0.05 / 3


def test_each_method_has_its_own_sample_size() -> None:
    sizes = {m: plan_sample_size(BASE, mde=0.1, method=m) for m in AnalysisMethod}
    fixed = sizes[AnalysisMethod.FIXED]
    assert sizes[AnalysisMethod.BAYESIAN] == fixed  # k = 1: 1 - alpha/2 is the z-test
    assert fixed < sizes[AnalysisMethod.GROUP_SEQUENTIAL] < sizes[AnalysisMethod.SEQUENTIAL]
    assert sizes[AnalysisMethod.GROUP_SEQUENTIAL] == math.ceil(
        fixed * inflation_factor(0.05, 0.8) - 1e-9
    )


def test_inflation_factor_of_the_obrien_fleming_design() -> None:
    # Jennison & Turnbull (2000, Table 2.7) give ~1.02-1.03 for O'Brien-Fleming designs.
    assert inflation_factor(0.05, 0.8, 1) == pytest.approx(1.0, abs=1e-6)
    five = inflation_factor(0.05, 0.8, 5)
    ten = inflation_factor(0.05, 0.8, 10)
    assert 1.01 < five < ten < 1.06
    c = 2.2414027
    z_b, z_a = stats.norm.ppf(0.8), stats.norm.ppf(0.975)
    assert inflation_factor(0.05, 0.8) == pytest.approx(((c + z_b) / (z_a + z_b)) ** 2, rel=1e-6)


def test_plan_units_accepts_a_blinded_pooled_baseline() -> None:
    # Pooled over variants without labels: the same function, the pooled mean and variance.
    pooled = plan_units(
        kind=MetricKind.MEAN, baseline_mean=10.0, baseline_var=30.0, mde=0.05, alpha=0.05,
        power=0.8, weights=[0.5, 0.5], method=AnalysisMethod.GROUP_SEQUENTIAL,
    )  # fmt: skip
    expected = plan_sample_size(
        Baseline(MetricKind.MEAN, 10.0, 30.0), mde=0.05, method=AnalysisMethod.GROUP_SEQUENTIAL
    )
    assert pooled == expected


def test_guardrail_power_with_and_without_margin() -> None:
    revenue = Baseline(MetricKind.MEAN, 20.0, 400.0)
    n = 20000
    se = math.sqrt(400.0 / 10000 * 2)
    ni = guardrail_power(revenue, total_units=n, margin=0.02)
    assert ni == pytest.approx(stats.norm.cdf(0.4 / se - stats.norm.ppf(0.95)))
    absolute = guardrail_power(revenue, total_units=n, margin=0.4, margin_type=MarginType.ABSOLUTE)
    assert absolute == pytest.approx(ni)
    harm = guardrail_power(revenue, total_units=n, guardrails=3, harm=0.05)
    assert harm == pytest.approx(stats.norm.cdf(1.0 / se - stats.norm.ppf(1 - 0.05 / 6)))
