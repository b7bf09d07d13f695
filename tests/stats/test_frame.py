from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from statsmodels.stats.proportion import proportions_ztest

from experiments import analyze_frame
from experiments.stats.frame import cap_values, parse_metric_spec, read_unit_file


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    rng = np.random.default_rng(21)
    n = 6000
    variant = rng.choice(["control", "treatment"], n)
    treated = variant == "treatment"
    pre = rng.gamma(2, 10, n)
    return pd.DataFrame(
        {
            "variant": variant,
            "converted": rng.binomial(1, np.where(treated, 0.115, 0.1)),
            "revenue": 5 + 0.5 * pre + rng.normal(0, 4, n) + treated * 0.4,
            "pre_revenue": pre,
            "plays": rng.poisson(3, n),
            "impressions": rng.poisson(9, n) + 1,
            "pre_plays": rng.poisson(3, n),
            "pre_impressions": rng.poisson(9, n) + 1,
            "label": rng.choice(["x", "y"], n),
        }
    )


METRICS = {
    "converted": "conversion:converted",
    "revenue": "mean:revenue",
    "take_rate": "ratio:plays/impressions",
}


def test_matches_references_on_raw_columns(df: pd.DataFrame) -> None:
    report = analyze_frame(df, metrics=METRICS)
    json.dumps(report, allow_nan=False)
    c, t = df[df.variant == "control"], df[df.variant == "treatment"]
    conv = report["metrics"]["converted"]
    assert conv["role"] == "primary"
    _, p = proportions_ztest([t.converted.sum(), c.converted.sum()], [len(t), len(c)])
    assert conv["comparisons"][0]["p_value"] == pytest.approx(p, rel=1e-9)
    revenue = report["metrics"]["revenue"]
    assert revenue["role"] == "secondary"
    assert revenue["comparisons"][0]["p_value"] == pytest.approx(
        sps.ttest_ind(t.revenue, c.revenue, equal_var=False).pvalue, rel=1e-9
    )
    take = report["metrics"]["take_rate"]["variants"]
    assert take["control"]["mean"] == pytest.approx(c.plays.sum() / c.impressions.sum())
    assert report["srm"]["observed"] == {"control": len(c), "treatment": len(t)}
    assert report["srm"]["expected"] == {"control": len(df) / 2, "treatment": len(df) / 2}


def test_primary_covariates_and_weights(df: pd.DataFrame) -> None:
    report = analyze_frame(
        df,
        metrics=METRICS,
        primary="revenue",
        weights={"control": 0.5, "treatment": 0.5},
        covariates={"revenue": "pre_revenue", "take_rate": "pre_plays/pre_impressions"},
        planned_n=6000,
    )
    assert report["metrics"]["revenue"]["role"] == "primary"
    assert report["metrics"]["converted"]["role"] == "secondary"
    cuped = report["metrics"]["revenue"]["cuped"]
    assert cuped["variance_reduction"] > 0.5
    assert isinstance(report["metrics"]["take_rate"]["cuped"]["theta"], list)
    assert report["metrics"]["converted"]["cuped"] is None


@pytest.mark.parametrize("method", ["sequential", "bayesian"], ids=str)
def test_methods(df: pd.DataFrame, method: str) -> None:
    report = analyze_frame(df, metrics=METRICS, method=method, planned_n=20000)
    assert report["method"] == method


def test_large_mean_precision(df: pd.DataFrame) -> None:
    rng = np.random.default_rng(2)
    big = pd.DataFrame(
        {"variant": np.repeat(["control", "treatment"], 500), "y": 1e6 + rng.normal(0, 1, 1000)}
    )
    report = analyze_frame(big, metrics={"y": "mean:y"})
    c, t = big.y[:500].to_numpy(), big.y[500:].to_numpy()
    comparison = report["metrics"]["y"]["comparisons"][0]
    assert comparison["abs_diff"] == pytest.approx(t.mean() - c.mean(), rel=1e-8)
    assert comparison["p_value"] == pytest.approx(
        sps.ttest_ind(t, c, equal_var=False).pvalue, rel=1e-7
    )
    assert report["metrics"]["y"]["variants"]["control"]["std_dev"] == pytest.approx(
        np.std(c, ddof=1), rel=1e-9
    )


def bad(df: pd.DataFrame, **changes: object) -> dict[str, object]:
    kwargs: dict[str, object] = {"metrics": dict(METRICS)}
    kwargs.update(changes)
    return kwargs


ERRORS = [
    ({"metrics": {"m": "mean:nope"}}, "metric 'm': column 'nope' not found"),
    ({"control": "ctl"}, "control 'ctl' not found in column 'variant'"),
    ({"variant_col": "arm_col"}, "variant column 'arm_col' not found"),
    ({"metrics": {"m": "mean:label"}}, "column 'label' is not numeric"),
    ({"metrics": {"m": "median:revenue"}}, "metric 'm': bad SPEC 'median:revenue'"),
    ({"metrics": {"m": "ratio:plays"}}, "bad SPEC 'ratio:plays'"),
    ({"metrics": {"m": "conversion:plays"}}, "must hold 0/1 values"),
    ({"weights": {"control": 0.5, "treatment": 0.6}}, "weights must sum to 1, got 1.1"),
    ({"weights": {"control": 1.0}}, "weights miss variant"),
    ({"method": "frequentist"}, "unknown method 'frequentist'"),
    ({"primary": "nope"}, "primary 'nope' is not one of the metrics"),
    ({"covariates": {"nope": "pre_revenue"}}, "covariate given for unknown metric 'nope'"),
    ({"covariates": {"take_rate": "pre_plays"}}, "covariate must be NUM/DEN"),
    ({"alpha": 0}, "alpha must be in"),
    ({"planned_n": -5}, "planned_n must be a positive integer"),
    ({"metrics": {}}, "metrics must map"),
]


@pytest.mark.parametrize(("changes", "message"), ERRORS, ids=[m[:28] for _, m in ERRORS])
def test_bad_input_raises_one_line_value_error(
    df: pd.DataFrame, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        analyze_frame(df, **bad(df, **changes))  # type: ignore[arg-type]
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("revenue", [np.nan, 1.0], "column 'revenue' has 1 NaN values"),
        ("impressions", [-1, 3], "denominator column 'impressions' is negative"),
        ("revenue", [np.inf, 1.0], "infinite"),
    ],
    ids=["nan", "negative-denominator", "infinite"],
)
def test_bad_values(df: pd.DataFrame, column: str, values: list[float], message: str) -> None:
    broken = df.copy()
    broken[column] = broken[column].astype(float)
    broken.loc[broken.index[:2], column] = values
    with pytest.raises(ValueError, match=message):
        analyze_frame(broken, metrics=METRICS)


def test_nan_variant_is_rejected(df: pd.DataFrame) -> None:
    broken = df.copy()
    broken.loc[broken.index[0], "variant"] = None
    with pytest.raises(ValueError, match="variant column 'variant' has missing values"):
        analyze_frame(broken, metrics=METRICS)


def test_caps(df: pd.DataFrame) -> None:
    values = np.array([1.0, 2.0, 3.0, 100.0])
    assert list(cap_values(values, 10)) == [1.0, 2.0, 3.0, 10.0]
    assert cap_values(values, {"percentile": 75})[-1] == pytest.approx(np.percentile(values, 75))
    with pytest.raises(ValueError, match="percentile must be in"):
        cap_values(values, {"percentile": 0})
    capped = analyze_frame(df, metrics={"revenue": "mean:revenue"}, caps={"revenue": 10.0})
    assert capped["metrics"]["revenue"]["variants"]["control"]["mean"] <= 10.0
    with pytest.raises(ValueError, match="caps apply to mean and count"):
        analyze_frame(df, metrics={"c": "conversion:converted"}, caps={"c": 1.0})


def test_parse_metric_spec() -> None:
    assert parse_metric_spec("m", "count:plays") == ("count", ["plays"])
    assert parse_metric_spec("m", "ratio:a/b") == ("ratio", ["a", "b"])


def test_read_unit_file(tmp_path: Path, df: pd.DataFrame) -> None:
    small = df.head(20)
    small.to_csv(tmp_path / "u.csv", index=False)
    small.to_parquet(tmp_path / "u.parquet")
    pd.testing.assert_frame_equal(read_unit_file(tmp_path / "u.csv"), small.reset_index(drop=True))
    pd.testing.assert_frame_equal(read_unit_file(tmp_path / "u.parquet"), small)
    with pytest.raises(ValueError, match=re.escape("unsupported file type '.xlsx'")):
        read_unit_file(tmp_path / "u.xlsx")
    with pytest.raises(ValueError, match="file not found"):
        read_unit_file(tmp_path / "missing.csv")
