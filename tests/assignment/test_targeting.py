from __future__ import annotations

import time
from typing import Any

import pytest

from experiments.assignment.targeting import compile_targeting, validate_targeting

# (tree, attributes, expected) — every operator, with present, missing and null values.
CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    ("eq-hit", {"country": {"eq": "US"}}, {"country": "US"}, True),
    ("eq-miss", {"country": {"eq": "US"}}, {"country": "FR"}, False),
    ("eq-missing", {"country": {"eq": "US"}}, {}, False),
    ("eq-int-float", {"n": {"eq": 1}}, {"n": 1.0}, True),
    ("eq-bool-not-int", {"flag": {"eq": 1}}, {"flag": True}, False),
    ("eq-bool", {"flag": {"eq": True}}, {"flag": True}, True),
    ("eq-list", {"tags": {"eq": ["a", "b"]}}, {"tags": ["a", "b"]}, True),
    ("ne-hit", {"country": {"ne": "US"}}, {"country": "FR"}, True),
    ("ne-miss", {"country": {"ne": "US"}}, {"country": "US"}, False),
    ("ne-missing", {"country": {"ne": "US"}}, {}, True),
    ("ne-null", {"country": {"ne": "US"}}, {"country": None}, True),
    ("in-hit", {"country": {"in": ["US", "CA"]}}, {"country": "CA"}, True),
    ("in-miss", {"country": {"in": ["US", "CA"]}}, {"country": "FR"}, False),
    ("in-missing", {"country": {"in": ["US", "CA"]}}, {}, False),
    ("in-bool-not-int", {"n": {"in": [1, 2]}}, {"n": True}, False),
    ("not_in-hit", {"country": {"not_in": ["US"]}}, {"country": "FR"}, True),
    ("not_in-miss", {"country": {"not_in": ["US"]}}, {"country": "US"}, False),
    ("not_in-missing", {"country": {"not_in": ["US"]}}, {}, True),
    ("gt-hit", {"age": {"gt": 18}}, {"age": 19}, True),
    ("gt-equal", {"age": {"gt": 18}}, {"age": 18}, False),
    ("gte-equal", {"age": {"gte": 18}}, {"age": 18.0}, True),
    ("gte-below", {"age": {"gte": 18}}, {"age": 17.9}, False),
    ("lt-hit", {"age": {"lt": 18}}, {"age": 17}, True),
    ("lt-equal", {"age": {"lt": 18}}, {"age": 18}, False),
    ("lte-equal", {"age": {"lte": 18}}, {"age": 18}, True),
    ("lte-above", {"age": {"lte": 18}}, {"age": 19}, False),
    ("gt-missing", {"age": {"gt": 18}}, {}, False),
    ("lt-missing", {"age": {"lt": 18}}, {}, False),
    ("gt-string", {"version": {"gte": "2.0"}}, {"version": "2.1"}, True),
    ("gt-mixed-types", {"age": {"gt": 18}}, {"age": "30"}, False),
    ("gt-bool", {"age": {"gt": 0}}, {"age": True}, False),
    ("exists-true-hit", {"plan": {"exists": True}}, {"plan": "pro"}, True),
    ("exists-true-missing", {"plan": {"exists": True}}, {}, False),
    ("exists-true-null", {"plan": {"exists": True}}, {"plan": None}, False),
    ("exists-false-missing", {"plan": {"exists": False}}, {}, True),
    ("exists-false-present", {"plan": {"exists": False}}, {"plan": "pro"}, False),
    ("regex-hit", {"email": {"regex": r"@example\.com$"}}, {"email": "a@example.com"}, True),
    ("regex-search-not-match", {"email": {"regex": "example"}}, {"email": "a@example.com"}, True),
    ("regex-miss", {"email": {"regex": r"@example\.com$"}}, {"email": "a@other.org"}, False),
    ("regex-missing", {"email": {"regex": "x"}}, {}, False),
    ("regex-non-string", {"id": {"regex": "1"}}, {"id": 1}, False),
    ("range", {"age": {"gte": 18, "lt": 65}}, {"age": 40}, True),
    ("range-out", {"age": {"gte": 18, "lt": 65}}, {"age": 70}, False),
    (
        "implicit-and",
        {"country": {"eq": "US"}, "age": {"gte": 18}},
        {"country": "US", "age": 1},
        False,
    ),
    ("and", {"and": [{"a": {"eq": 1}}, {"b": {"eq": 2}}]}, {"a": 1, "b": 2}, True),
    ("and-fails", {"and": [{"a": {"eq": 1}}, {"b": {"eq": 2}}]}, {"a": 1, "b": 3}, False),
    ("or", {"or": [{"a": {"eq": 1}}, {"b": {"eq": 2}}]}, {"a": 0, "b": 2}, True),
    ("or-fails", {"or": [{"a": {"eq": 1}}, {"b": {"eq": 2}}]}, {}, False),
    ("not", {"not": {"country": {"eq": "US"}}}, {"country": "FR"}, True),
    ("not-missing", {"not": {"country": {"eq": "US"}}}, {}, True),
    ("empty-tree", {}, {}, True),
    ("empty-and", {"and": []}, {}, True),
    ("empty-or", {"or": []}, {}, False),
    (
        "nested",
        {"or": [{"not": {"age": {"lt": 18}}, "age": {"exists": True}}, {"vip": {"eq": True}}]},
        {"age": 12, "vip": True},
        True,
    ),
]


@pytest.mark.parametrize(
    ("tree", "attributes", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_operator(tree: dict[str, Any], attributes: dict[str, Any], expected: bool) -> None:
    assert validate_targeting(tree) == []
    predicate = compile_targeting(tree)
    assert predicate is not None
    assert predicate(attributes) is expected


def test_no_targeting() -> None:
    assert compile_targeting(None) is None
    assert validate_targeting(None) == []


PROBLEMS: list[tuple[str, Any, list[str]]] = [
    ("not-object", ["US"], ["targeting: must be an object"]),
    ("in-not-list", {"country": {"in": "US"}}, ["targeting.country.in: must be a list"]),
    ("not_in-not-list", {"country": {"not_in": 3}}, ["targeting.country.not_in: must be a list"]),
    ("unknown-op", {"age": {"between": [1, 2]}}, ["targeting.age.between: unknown operator"]),
    (
        "operand-object-missing",
        {"age": 18},
        ["targeting.age: must be a non-empty object of operators"],
    ),
    ("empty-operators", {"age": {}}, ["targeting.age: must be a non-empty object of operators"]),
    ("gt-list", {"age": {"gt": [1]}}, ["targeting.age.gt: must be a number or a string"]),
    ("gt-bool", {"age": {"lte": True}}, ["targeting.age.lte: must be a number or a string"]),
    ("gt-nan", {"age": {"lt": float("nan")}}, ["targeting.age.lt: must be a number or a string"]),
    ("exists-str", {"plan": {"exists": "yes"}}, ["targeting.plan.exists: must be true or false"]),
    (
        "regex-bad",
        {"email": {"regex": "(unclosed"}},
        ["targeting.email.regex: is not a valid regular"],
    ),
    ("regex-not-str", {"email": {"regex": 5}}, ["targeting.email.regex: must be a string"]),
    (
        "regex-backreference",
        {"email": {"regex": r"(a)\1"}},
        ["targeting.email.regex: is not a valid regular expression for RE2"],
    ),
    (
        "regex-lookahead",
        {"email": {"regex": "(?=x)y"}},
        ["targeting.email.regex: is not a valid regular expression for RE2"],
    ),
    (
        "regex-nul",
        {"email": {"regex": "a\x00b"}},
        ["targeting.email.regex: must not contain NUL characters"],
    ),
    (
        "regex-too-long",
        {"email": {"regex": "a" * 1001}},
        ["targeting.email.regex: must be at most 1000 characters"],
    ),
    ("eq-not-json", {"a": {"eq": object()}}, ["targeting.a.eq: must be a JSON value"]),
    ("and-not-list", {"and": {"a": {"eq": 1}}}, ["targeting.and: must be a list of conditions"]),
    ("or-item", {"or": [{"a": {"eq": 1}}, 7]}, ["targeting.or[1]: must be an object"]),
    ("not-nested", {"not": {"a": {"in": 1}}}, ["targeting.not.a.in: must be a list"]),
    (
        "several",
        {"a": {"in": 1}, "b": {"exists": 0}},
        ["targeting.a.in: must be a list", "targeting.b.exists: must be true or false"],
    ),
    (
        "too-deep",
        {
            "not": {
                "not": {
                    "not": {
                        "not": {
                            "not": {
                                "not": {
                                    "not": {
                                        "not": {
                                            "not": {
                                                "not": {
                                                    "not": {
                                                        "not": {
                                                            "not": {
                                                                "not": {"not": {"not": {"not": {}}}}
                                                            }
                                                        }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
        ["nests deeper than 16 levels"],
    ),
]


@pytest.mark.parametrize(
    ("tree", "messages"), [p[1:] for p in PROBLEMS], ids=[p[0] for p in PROBLEMS]
)
def test_validate_targeting_paths(tree: Any, messages: list[str]) -> None:
    problems = [str(p) for p in validate_targeting(tree)]
    assert len(problems) == len(messages)
    for problem, message in zip(problems, messages, strict=True):
        assert message in problem


def test_validate_targeting_custom_prefix() -> None:
    problems = validate_targeting({"a": {"in": 1}}, "experiments[2].targeting")
    assert [p.path for p in problems] == ["experiments[2].targeting.a.in"]


def test_compile_refuses_invalid_tree_with_one_line() -> None:
    with pytest.raises(ValueError, match=r"^targeting\.country\.in: must be a list$"):
        compile_targeting({"country": {"in": "US"}})


@pytest.mark.parametrize(
    "pattern",
    ["(.*.*)*x", "(a+)+$", "(a|aa)+$", "(.*){1,32}x", "^(([a-z])+.)+[A-Z]([a-z])+$"],
    ids=["nested-star", "nested-plus", "alternation", "counted", "email-like"],
)
def test_regex_cannot_backtrack_catastrophically(pattern: str) -> None:
    """Patterns that take seconds to minutes on a backtracking engine answer at once (RE2)."""
    predicate = compile_targeting({"v": {"regex": pattern}})
    assert predicate is not None
    attributes = {"v": "a" * 15 + "!"}  # 16 characters
    predicate(attributes)  # warm up
    runs = 200
    began = time.perf_counter()
    for _ in range(runs):
        assert predicate(attributes) is False
    per_call = (time.perf_counter() - began) / runs
    # Python's re needs ~26 s for the first pattern on this input; RE2 ~5 µs.
    # A shared, loaded 2-core machine is allowed a wide margin.
    assert per_call < 0.005, f"{per_call * 1e6:.0f} µs per evaluation"


def test_regex_time_is_linear_in_the_attribute_length() -> None:
    predicate = compile_targeting({"v": {"regex": "(.*.*)*x"}})
    assert predicate is not None
    began = time.perf_counter()
    assert predicate({"v": "a" * 100_000}) is False
    assert time.perf_counter() - began < 1.0


def test_regex_on_a_lone_surrogate_is_false_not_an_error() -> None:
    predicate = compile_targeting({"v": {"regex": "a"}})
    assert predicate is not None
    assert predicate({"v": "\ud800a"}) is False
