from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from experiments.report.format import (
    DASH,
    format_confidence,
    format_count,
    format_interval,
    format_number,
    format_p_value,
    format_percent,
    format_points,
    format_signed_number,
    interval_name,
)

CASES: list[tuple[Callable[..., str], tuple[Any, ...], dict[str, Any], str]] = [
    (format_number, (0.0123456,), {}, "0.0123"),
    (format_number, (3.14159,), {"digits": 4}, "3.142"),
    (format_number, (1.0,), {}, "1.00"),
    (format_number, (12345.678,), {}, "12,346"),
    (format_number, (-0.5,), {}, "-0.500"),
    (format_number, (0,), {}, "0"),
    (format_number, (0.0000123,), {}, "1.23e-05"),
    (format_number, (None,), {}, DASH),
    (format_number, (math.nan,), {}, DASH),
    (format_number, (math.inf,), {}, DASH),
    (format_number, (True,), {}, DASH),
    (format_count, (50210,), {}, "50,210"),
    (format_count, (None,), {}, DASH),
    (format_percent, (0.0691,), {}, "6.91%"),
    (format_percent, (0.0691,), {"signed": True}, "+6.91%"),
    (format_percent, (-0.1445,), {"signed": True}, "-14.45%"),
    (format_percent, (-0.00001,), {"signed": True}, "0.00%"),
    (format_percent, (0.95,), {"digits": 1}, "95.0%"),
    (format_percent, (None,), {}, DASH),
    (format_points, (0.007,), {}, "+0.70 pp"),
    (format_points, (-0.0238,), {}, "-2.38 pp"),
    (format_points, (0.00001,), {}, "0.00 pp"),
    (format_p_value, (0.0002,), {}, "< 0.001"),
    (format_p_value, (0.001,), {}, "0.001"),
    (format_p_value, (0.04951,), {}, "0.050"),
    (format_p_value, (1.0,), {}, "1.000"),
    (format_p_value, (None,), {}, DASH),
    (format_interval, ([0.03, 0.11],), {"percent": True}, "[+3.00%, +11.00%]"),
    (format_interval, ([-1.5152, 0.07974],), {"digits": 3}, "[-1.52, 0.0797]"),
    (format_interval, (None,), {}, DASH),
    (format_interval, ([None, 0.2],), {}, DASH),
    (format_signed_number, (0.25,), {}, "+0.250"),
    (format_signed_number, (-0.25,), {}, "-0.250"),
    (format_confidence, (0.05,), {}, "95%"),
    (format_confidence, (0.025,), {}, "97.5%"),
    (interval_name, ("fixed", 0.05), {}, "95% CI"),
    (interval_name, ("bayesian", 0.1), {}, "90% credible interval"),
    (interval_name, ("sequential", 0.05), {}, "95% always-valid CI"),
]


@pytest.mark.parametrize(
    ("function", "args", "kwargs", "expected"),
    CASES,
    ids=[f"{f.__name__}-{i}" for i, (f, *_rest) in enumerate(CASES)],
)
def test_formats(
    function: Callable[..., str], args: tuple[Any, ...], kwargs: dict[str, Any], expected: str
) -> None:
    assert function(*args, **kwargs) == expected
