"""Targeting: a condition tree on unit attributes, validated at save, compiled once.

Tree grammar (JSON)::

    tree       := {name: operators, ..., "and": [tree, ...], "or": [tree, ...], "not": tree}
    operators  := {op: operand, ...}      # several operators on one attribute: all must hold

All keys of one object must hold (and). ``{}`` matches every unit; ``{"and": []}``
is true and ``{"or": []}`` is false. Operators:

===========  =====================  ==============================================
operator     operand                true when the attribute value ``v``
===========  =====================  ==============================================
``eq``       any JSON value         equals the operand
``ne``       any JSON value         does not equal it (or is missing)
``in``       list                   equals one of the items
``not_in``   list                   equals none of them (or is missing)
``gt``...    number or string       ``gt``/``gte``/``lt``/``lte``: compares
                                    (numbers with numbers, strings with strings;
                                    mixed types are false)
``exists``   bool                   ``exists: true``: present; ``false``: missing
``regex``    string (RE2 syntax)    is a string and RE2 finds the pattern in it
===========  =====================  ==============================================

A **missing** attribute (absent, or ``None``) makes every operator false except
``exists: false``, ``ne`` and ``not_in``, which are true. Equality is JSON
equality: booleans never equal numbers (``true != 1``), ``1 == 1.0``.

``regex`` runs on RE2 (``google-re2``), whose automaton matches in time linear
in the attribute's length whatever the pattern: no pattern can make an
assignment slow (catastrophic backtracking, e.g. ``(.*.*)*x``, cannot happen).
RE2 has no backreferences and no lookaround; a pattern RE2 refuses is a problem
reported by :func:`validate_targeting` when the experiment is saved.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

import re2

from experiments.errors import FieldProblem

__all__ = ["OPERATORS", "Predicate", "compile_targeting", "validate_targeting"]

Predicate = Callable[[Mapping[str, Any]], bool]
"""A compiled tree: attributes in, match out."""

OPERATORS = frozenset({"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "exists", "regex"})
MAX_DEPTH = 16
MAX_PATTERN = 1000
REGEX_MAX_MEMORY = 1 << 20
"""Bytes RE2 may use for one compiled pattern; larger automata are refused at save."""


def _regex_options() -> re2.Options:
    options = re2.Options()
    options.log_errors = False  # a refused pattern is a FieldProblem, not a log line
    options.max_mem = REGEX_MAX_MEMORY
    return options


_REGEX_OPTIONS = _regex_options()


def compile_regex(pattern: str) -> Any:
    """Compile ``pattern`` with RE2 (linear-time matching, bounded memory).

    Raises:
        ValueError: RE2 refuses the pattern (syntax it lacks, such as
            backreferences or lookaround, or an automaton over the memory bound).
    """
    try:
        return re2.compile(pattern, _REGEX_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(str(reason)) from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_equal(left: Any, right: Any) -> bool:
    """JSON equality: booleans differ from numbers, ``1 == 1.0``, containers deep."""
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left is right
    if _is_number(left) and _is_number(right):
        return bool(left == right)
    if isinstance(left, list) and isinstance(right, list):
        return len(left) == len(right) and all(map(json_equal, left, right))
    if isinstance(left, dict) and isinstance(right, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    return type(left) is type(right) and bool(left == right)


def _is_json(value: Any) -> bool:
    if value is None or isinstance(value, str | bool):
        return True
    if _is_number(value):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_is_json(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_json(v) for k, v in value.items())
    return False


def _validate_operand(op: str, operand: Any, path: str) -> list[FieldProblem]:
    if op in ("eq", "ne"):
        ok, message = _is_json(operand), "must be a JSON value"
    elif op in ("in", "not_in"):
        ok, message = isinstance(operand, list) and _is_json(operand), "must be a list"
    elif op in ("gt", "gte", "lt", "lte"):
        ok = (_is_number(operand) and math.isfinite(operand)) or isinstance(operand, str)
        message = "must be a number or a string"
    elif op == "exists":
        ok, message = isinstance(operand, bool), "must be true or false"
    else:  # regex
        if not isinstance(operand, str):
            return [FieldProblem(path, "must be a string")]
        if len(operand) > MAX_PATTERN:
            return [FieldProblem(path, f"must be at most {MAX_PATTERN} characters")]
        if "\x00" in operand:
            return [FieldProblem(path, "must not contain NUL characters")]
        try:
            compile_regex(operand)
        except ValueError as exc:
            return [FieldProblem(path, f"is not a valid regular expression for RE2 ({exc})")]
        return []
    return [] if ok else [FieldProblem(path, message)]


def validate_targeting(tree: Any, path: str = "targeting") -> list[FieldProblem]:
    """List every problem of a targeting tree, by path.

    Args:
        tree: The decoded JSON tree (``None`` means no targeting and is valid).
        path: Prefix of the problem paths.

    Returns:
        Problems such as ``targeting.country.in: must be a list``; empty when valid.
    """
    if tree is None:
        return []
    return _validate_tree(tree, path, 0)


def _validate_tree(tree: Any, path: str, depth: int) -> list[FieldProblem]:
    if depth > MAX_DEPTH:
        return [FieldProblem(path, f"nests deeper than {MAX_DEPTH} levels")]
    if not isinstance(tree, dict):
        return [FieldProblem(path, "must be an object")]
    problems: list[FieldProblem] = []
    for name, value in tree.items():
        sub = f"{path}.{name}"
        if not isinstance(name, str) or not name:
            problems.append(FieldProblem(path, "attribute names must be non-empty strings"))
        elif name in ("and", "or"):
            if not isinstance(value, list):
                problems.append(FieldProblem(sub, "must be a list of conditions"))
                continue
            for i, item in enumerate(value):
                problems.extend(_validate_tree(item, f"{sub}[{i}]", depth + 1))
        elif name == "not":
            problems.extend(_validate_tree(value, sub, depth + 1))
        elif not isinstance(value, dict) or not value:
            problems.append(FieldProblem(sub, "must be a non-empty object of operators"))
        else:
            for op, operand in value.items():
                if op not in OPERATORS:
                    known = ", ".join(sorted(OPERATORS))
                    problems.append(
                        FieldProblem(f"{sub}.{op}", f"unknown operator (use one of {known})")
                    )
                else:
                    problems.extend(_validate_operand(op, operand, f"{sub}.{op}"))
    return problems


def _compile_operator(name: str, op: str, operand: Any) -> Predicate:
    if op == "exists":
        return lambda attrs: (attrs.get(name) is not None) is operand
    if op == "eq":
        return lambda attrs: (v := attrs.get(name)) is not None and json_equal(v, operand)
    if op == "ne":
        return lambda attrs: (v := attrs.get(name)) is None or not json_equal(v, operand)
    if op in ("in", "not_in"):
        items = tuple(operand)
        strings = frozenset(item for item in items if isinstance(item, str))
        negate = op == "not_in"

        def member(attrs: Mapping[str, Any]) -> bool:
            value = attrs.get(name)
            if value is None:
                return negate
            if isinstance(value, str):  # fast path: strings only equal strings
                return (value in strings) is not negate
            found = any(json_equal(value, item) for item in items)
            return found is not negate

        return member
    if op == "regex":
        search = compile_regex(operand).search

        def matches(attrs: Mapping[str, Any]) -> bool:
            value = attrs.get(name)
            if not isinstance(value, str):
                return False
            try:
                return search(value) is not None
            except UnicodeEncodeError:  # a lone surrogate has no UTF-8 form for RE2
                return False

        return matches
    compare = _COMPARISONS[op]
    if isinstance(operand, str):
        return lambda attrs: isinstance(v := attrs.get(name), str) and compare(v, operand)

    def numeric(attrs: Mapping[str, Any]) -> bool:
        value = attrs.get(name)
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and bool(compare(value, operand))
        )

    return numeric


_COMPARISONS: dict[str, Callable[[Any, Any], Any]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def _all(predicates: list[Predicate]) -> Predicate:
    # Unrolled for the usual sizes: a generator per call costs more than the tests.
    if len(predicates) == 1:
        return predicates[0]
    if len(predicates) == 2:
        first, second = predicates
        return lambda attrs: first(attrs) and second(attrs)
    if len(predicates) == 3:
        first, second, third = predicates
        return lambda attrs: first(attrs) and second(attrs) and third(attrs)

    def every(attrs: Mapping[str, Any]) -> bool:
        for predicate in predicates:  # noqa: SIM110 (a loop: no generator per call)
            if not predicate(attrs):
                return False
        return True

    return every


def _any(predicates: list[Predicate]) -> Predicate:
    def some(attrs: Mapping[str, Any]) -> bool:
        for predicate in predicates:  # noqa: SIM110 (a loop: no generator per call)
            if predicate(attrs):
                return True
        return False

    return some


def _negate(predicate: Predicate) -> Predicate:
    return lambda attrs: not predicate(attrs)


def _compile_tree(tree: Mapping[str, Any]) -> Predicate:
    predicates: list[Predicate] = []
    for name, value in tree.items():
        if name == "and":
            predicates.append(_all([_compile_tree(t) for t in value]) if value else _true)
        elif name == "or":
            predicates.append(_any([_compile_tree(t) for t in value]))
        elif name == "not":
            predicates.append(_negate(_compile_tree(value)))
        else:
            predicates.extend(_compile_operator(name, op, arg) for op, arg in value.items())
    return _all(predicates) if predicates else _true


def _true(attrs: Mapping[str, Any]) -> bool:
    return True


def compile_targeting(tree: Any) -> Predicate | None:
    """Validate and compile a targeting tree into a fast predicate.

    Args:
        tree: The decoded JSON tree, or ``None`` for no targeting.

    Returns:
        A function of the attributes, or ``None`` when ``tree`` is ``None``.

    Raises:
        ValueError: Naming every problem, if the tree is invalid.
    """
    if tree is None:
        return None
    problems = validate_targeting(tree)
    if problems:
        raise ValueError("; ".join(str(p) for p in problems))
    return _compile_tree(tree)
