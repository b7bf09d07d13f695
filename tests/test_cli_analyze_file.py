from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from experiments.cli.analyze_file import analyze_file_command


@pytest.fixture(scope="module")
def unit_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rng = np.random.default_rng(0)
    n = 3000
    df = pd.DataFrame(
        {
            "group": rng.choice(["ctl", "new"], n),
            "converted": rng.binomial(1, 0.1, n),
            "revenue": rng.exponential(10, n),
            "pre_revenue": rng.exponential(10, n),
            "plays": rng.poisson(3, n),
            "impressions": rng.poisson(8, n) + 1,
        }
    )
    path = tmp_path_factory.mktemp("units") / "units.csv"
    df.to_csv(path, index=False)
    df.to_parquet(path.with_suffix(".parquet"))
    return path


BASE = ["--variant-col", "group", "--control", "ctl", "--metric", "converted=conversion:converted"]


def invoke(*args: str) -> object:
    return CliRunner().invoke(analyze_file_command, list(args))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"], ids=["csv", "parquet"])
def test_json_output_is_one_document(unit_file: Path, suffix: str) -> None:
    result = invoke(
        str(unit_file.with_suffix(suffix)), *BASE,
        "--metric", "revenue=mean:revenue", "--metric", "take=ratio:plays/impressions",
        "--covariate", "revenue=pre_revenue", "--weights", "ctl=0.5,new=0.5",
        "--primary", "revenue", "--alpha", "0.1", "--planned-n", "5000",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["alpha"] == 0.1
    assert report["control"] == "ctl"
    assert report["metrics"]["revenue"]["role"] == "primary"
    assert report["metrics"]["revenue"]["cuped"] is not None
    assert report["decision"]["status"] in {
        "ship",
        "rollback",
        "keep_running",
        "no_effect",
        "invalid",
    }
    assert result.stderr == ""


@pytest.mark.parametrize("method", ["fixed", "sequential", "bayesian"], ids=str)
def test_markdown_output(unit_file: Path, method: str) -> None:
    result = invoke(str(unit_file), *BASE, "--method", method, "--format", "markdown")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("# Experiment report")
    assert "### converted (conversion, primary" in result.stdout
    assert f"Method: {method}" in result.stdout


BAD = [
    (["--control", "nope"], "control 'nope' not found"),
    (["--metric", "x=mean:missing"], "column 'missing' not found"),
    (["--metric", "broken"], "--metric expects NAME=VALUE"),
    (["--weights", "ctl=0.7,new=0.7"], "weights must sum to 1"),
    (["--weights", "ctl=a,new=0.5"], "weight of 'ctl' is not a number"),
    (["--method", "magic"], "unknown method 'magic'"),
    (["--format", "html"], "unknown format 'html'"),
    (["--alpha", "big"], "--alpha must be a number"),
    (["--planned-n", "1.5"], "--planned-n must be an integer"),
    (["--covariate", "nope=pre_revenue"], "covariate given for unknown metric 'nope'"),
]


@pytest.mark.parametrize(("extra", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_input_exits_2_with_one_line(unit_file: Path, extra: list[str], message: str) -> None:
    args = [*BASE, *extra]
    if "--control" in extra:  # replace the default control rather than repeating the option
        args = ["--variant-col", "group", *extra, "--metric", "converted=conversion:converted"]
    result = invoke(str(unit_file), *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]


def test_missing_file_and_bad_type(tmp_path: Path) -> None:
    for path, message in (
        (tmp_path / "none.csv", "file not found"),
        (tmp_path / "x.txt", "unsupported file type"),
    ):
        result = invoke(str(path), *BASE)
        assert result.exit_code == 2
        assert message in result.stderr


def test_render_markdown_formats_numbers_for_people() -> None:
    from experiments.report.markdown import render_markdown

    comparison = {
        "variant": "t", "abs_diff": 0.007, "abs_ci": [0.003, 0.011], "rel_lift": 0.069,
        "rel_ci": [0.03, 0.11], "p_value": 0.0002, "p_value_adjusted": 0.0004,
        "significant": True, "direction": "better", "std_err": 0.002, "reason": None,
    }  # fmt: skip
    report = {
        "alpha": 0.05, "method": "fixed", "control": "c",
        "srm": {"observed": {"c": 50210, "t": 49790}, "expected": {"c": 50000.0, "t": 50000.0},
                "chi2": 1.76, "p_value": 0.18, "detected": False},
        "metrics": {
            "converted": {"kind": "conversion", "role": "primary", "correction": "holm",
                          "variants": {"c": {"n": 50210, "mean": 0.101},
                                       "t": {"n": 49790, "mean": 0.108}},
                          "comparisons": [comparison], "cuped": None},
            "revenue": {"kind": "mean", "role": "guardrail", "correction": "none",
                        "variants": {"c": {"n": 50210, "mean": 12.3456},
                                     "t": {"n": 49790, "mean": None}},
                        "comparisons": [{**comparison, "abs_diff": None, "abs_ci": None,
                                         "guardrail_status": "inconclusive", "reason": "no units"}],
                        "cuped": None},
        },
        "decision": {"status": "keep_running", "variant": None, "reasons": ["more data"],
                     "ml_divergence": True},
    }  # fmt: skip
    text = render_markdown(report)
    assert "**Decision: KEEP RUNNING**" in text
    assert "- more data" in text
    assert "ml_divergence" in text
    assert "| `c` | 50,210 | 10.10% |" in text  # a conversion rate as a percentage
    assert (
        "| `t` | +0.70% | [+0.30%, +1.10%] | +6.90% | [+3.00%, +11.00%] "
        "| < 0.001 | < 0.001 | **better** |" in text
    )
    assert "| `c` | 50,210 | 12.35 |" in text  # four significant digits
    assert "| `t` | — | — |" in text  # undefined numbers
    assert "| inconclusive |" in text  # guardrail column
    assert "- `t`: no units" in text
    assert "## Sample ratio (p = 0.180: no mismatch)" in text
