"""The looks of an experiment: which earlier looks are known, and the history a look leaves.

On the server every refresh is a look: the service passes the
:class:`~experiments.stats.spec.AnalysisHistory` of the previous snapshot and
stores ``Report.history``. In a notebook the earlier looks are the total units
given in ``AnalysisSpec.looks`` (their boundaries are recomputed by the same
recursion); with neither, the looks are unknown and the group-sequential
boundaries assume continuous monitoring.

A look whose information fraction ``t = min(1, n/planned_n)`` is not above an
earlier one (a refresh without new units, or past ``planned_n``) supersedes it:
the recursion needs increasing ``t``, and the boundary is then the same.
"""

from __future__ import annotations

from collections.abc import Mapping

from experiments.domain import AnalysisMethod
from experiments.stats.spec import AnalysisHistory, AnalysisSpec, KeptVerdict, Look, RunningBound

_EPS = 1e-12


def _increasing(looks: list[Look], t_now: float) -> list[Look]:
    kept: list[Look] = []
    for look in looks:
        if look.information >= t_now - _EPS:
            continue
        if kept and look.information <= kept[-1].information + _EPS:
            continue
        kept.append(look)
    return kept


def earlier_looks(spec: AnalysisSpec, planned_n: int | None, t_now: float) -> list[Look] | None:
    """The earlier looks the boundaries may rely on, oldest first; None when unknown.

    From ``spec.history`` when given (the server), else from ``spec.looks``
    (notebook; boundaries are recomputed, so ``boundary_z`` is NaN here), else None.
    """
    if spec.history is not None:
        return _increasing(list(spec.history.looks), t_now)
    if spec.looks:
        if planned_n is None:
            return None
        given = [Look(int(n), min(1.0, n / planned_n), float("nan")) for n in spec.looks if n > 0]
        return _increasing(sorted(given, key=lambda look: look.n), t_now)
    return None


def next_history(
    spec: AnalysisSpec,
    earlier: list[Look] | None,
    this_look: Look | None,
    running: Mapping[str, RunningBound],
    srm_p_value: float | None,
    verdict: KeptVerdict | None,
) -> AnalysisHistory:
    """The history this look leaves: the looks so far (this one last) and the running state."""
    before = spec.history if spec.history is not None else AnalysisHistory()
    looks = list(earlier or [])
    if this_look is not None:
        looks.append(this_look)
    elif spec.history is not None:
        looks = list(spec.history.looks)
    merged = {**before.running, **running}
    srm = srm_p_value if spec.sequential_srm else before.srm_p_value
    kept = before.verdict if before.verdict is not None else verdict
    return AnalysisHistory(tuple(looks), merged, srm, kept)


def reuses_boundaries(spec: AnalysisSpec) -> bool:
    """Whether stored boundaries of earlier looks are reused (server, ``group_sequential``)."""
    return spec.history is not None and spec.method is AnalysisMethod.GROUP_SEQUENTIAL
