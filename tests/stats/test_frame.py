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
from experiments.stats.caps import nearest_rank
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


@pytest.mark.parametrize("method", ["sequential", "group_sequential", "bayesian"], ids=str)
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
    ({"guardrails": {"nope": None}}, "guardrail 'nope' is not one of the metrics"),
    ({"guardrails": {"converted": None}}, "guardrail 'converted' is the primary metric"),
    ({"guardrails": {"revenue": -1}}, "guardrail 'revenue': margin must be a number >= 0"),
    ({"guardrails": {"revenue": {"margin": 1, "margin_type": "pct"}}}, "margin_type must be"),
    ({"guardrails": {"revenue": {"limit": 1}}}, "guardrail 'revenue': unknown key 'limit'"),
    ({"higher_is_better": {"revenue": "no"}}, "higher_is_better['revenue'] must be True"),
    ({"higher_is_better": {"nope": False}}, "higher_is_better given for unknown metric"),
    ({"correction": "sidak"}, "unknown correction 'sidak'"),
    ({"prior_sd": -1}, "prior_sd must be a number >= 0 or None"),
    ({"mde": 0}, "mde must be a non-zero number"),
    ({"power": 1}, "power must be in (0, 1)"),
    ({"looks": [100, 0]}, "looks must be positive integers"),
    ({"ml_metrics": {"auc": "roc"}}, "ML metric 'auc': unknown kind 'roc'"),
    ({"ml_metrics": {"auc": "auc"}}, "ml_metrics need predictions"),
    ({"caps": {"revenue": {"pct": 9}}}, "metric 'revenue': cap: expected a number"),
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
    # Nearest rank: the value at rank ceil(0.75 * 4) = 3, no interpolation.
    assert cap_values(values, {"percentile": 75})[-1] == 3.0
    assert cap_values(values, {"percentile": 75})[-1] == np.percentile(
        values, 75, method="inverted_cdf"
    )
    zeros = np.array([0.0] * 6 + [1.0, 2.0, 3.0, 100.0])
    assert cap_values(zeros, {"percentile": 75})[-1] == 2.0  # rank 8 of 10
    assert cap_values(zeros, {"percentile": 75, "ignore_zeros": True})[-1] == 3.0  # rank 3 of 4
    with pytest.raises(ValueError, match="percentile must be in"):
        cap_values(values, {"percentile": 0})
    with pytest.raises(ValueError, match="ignore_zeros must be true or false"):
        cap_values(values, {"percentile": 50, "ignore_zeros": "yes"})
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


def test_nearest_rank_matches_sql_and_numpy() -> None:
    rng = np.random.default_rng(2)
    for n in (1, 7, 100, 1001):
        x = rng.lognormal(0, 2, n)
        for q in (0.5, 50, 90, 99, 99.9, 100):
            rank = nearest_rank(q, n)
            assert rank == max(1, int(np.ceil(q / 100 * n - 1e-9)))
            assert np.sort(x)[rank - 1] == np.percentile(x, q, method="inverted_cdf")


def test_cap_applies_to_the_covariate_too(df: pd.DataFrame) -> None:
    frame = df.assign(pre_copy=df["revenue"])
    report = analyze_frame(
        frame, metrics={"revenue": "mean:revenue"}, covariates={"revenue": "pre_copy"},
        caps={"revenue": {"percentile": 90}}, planned_n=len(df),
    )  # fmt: skip
    # The covariate is the same column capped the same way: CUPED removes all variance.
    assert report["metrics"]["revenue"]["cuped"]["variance_reduction"] == pytest.approx(1.0)


def test_guardrails_directions_and_harm_only(df: pd.DataFrame) -> None:
    frame = df.assign(latency=100 + np.random.default_rng(4).normal(0, 10, len(df)))
    report = analyze_frame(
        frame,
        metrics={**METRICS, "latency": "mean:latency"},
        guardrails={"revenue": 0.02, "latency": None, "take_rate": {"margin": 0.5,
                    "margin_type": "absolute"}},
        higher_is_better={"latency": False},
        planned_n=len(frame),
    )  # fmt: skip
    metrics = report["metrics"]
    assert metrics["revenue"]["role"] == "guardrail"
    assert (metrics["revenue"]["margin"], metrics["revenue"]["margin_type"]) == (0.02, "relative")
    assert metrics["take_rate"]["margin_type"] == "absolute"
    assert metrics["latency"]["margin"] is None
    assert metrics["latency"]["higher_is_better"] is False
    status = metrics["latency"]["comparisons"][0]["guardrail_status"]
    assert status in {"harmed", "not_harmed"}
    assert metrics["take_rate"]["comparisons"][0]["guardrail_status"] == "non_inferior"
    assert report["decision"]["rule"]
    assert report["decision"]["planned_n"] == len(frame)


def test_ml_metrics_from_predictions_with_clustered_variances(df: pd.DataFrame) -> None:
    rng = np.random.default_rng(8)
    units = df.assign(unit_id=[f"u{i}" for i in range(len(df))])
    chosen = units.sample(600, random_state=1)
    rows = chosen.loc[chosen.index.repeat(3)]  # three predictions per unit
    sharp = np.where(rows.variant == "treatment", 3.0, 1.0)
    scores = rng.random(len(rows))
    predictions = pd.DataFrame({
        "variant": rows.variant.to_numpy(), "unit_id": rows.unit_id.to_numpy(), "score": scores,
        "label": (rng.random(len(rows)) < scores**sharp).astype(float),
    })  # fmt: skip
    report = analyze_frame(
        units, metrics=METRICS, predictions=predictions,
        ml_metrics={"ranker_auc": "auc", "ranker_log_loss": "log_loss"},
    )  # fmt: skip
    auc = report["metrics"]["ranker_auc"]
    assert auc["role"] == "ml"
    assert auc["correction"] == "holm"
    assert auc["variants"]["treatment"]["n"] == int((rows.variant == "treatment").sum())
    assert auc["comparisons"][0]["abs_diff"] > 0
    assert report["metrics"]["ranker_log_loss"]["higher_is_better"] is False
    stray = predictions.assign(variant="control")
    with pytest.raises(ValueError, match="exposed to another variant"):
        analyze_frame(units, metrics=METRICS, predictions=stray, ml_metrics={"a": "auc"})


def test_looks_make_the_group_sequential_boundary_exact(df: pd.DataFrame) -> None:
    alone = analyze_frame(df, metrics=METRICS, method="group_sequential", planned_n=12000)
    known = analyze_frame(
        df, metrics=METRICS, method="group_sequential", planned_n=12000, looks=[2000, 4000]
    )
    assert [look["n"] for look in known["looks"]] == [2000, 4000, 6000]
    assert [look["information"] for look in known["looks"]] == pytest.approx([1 / 6, 1 / 3, 0.5])
    assert len(alone["looks"]) == 1
    # Continuous monitoring is conservative: a higher boundary than with the looks known.
    assert alone["looks"][0]["boundary_z"] > known["looks"][-1]["boundary_z"]
    c = alone["metrics"]["converted"]["comparisons"][0]
    half = (c["abs_ci"][1] - c["abs_ci"][0]) / 2
    assert half == pytest.approx(alone["looks"][0]["boundary_z"] * c["std_err"])
