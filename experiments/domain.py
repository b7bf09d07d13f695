"""Closed sets of words shared by every layer (DESIGN.md "Domain words")."""

from __future__ import annotations

import re
from enum import StrEnum

EXPERIMENT_KEY_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
EVENT_NAME_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
UNIT_ID_MAX = 256


class ExperimentStatus(StrEnum):
    """Lifecycle: draft → running → stopped → concluded."""

    DRAFT = "draft"
    RUNNING = "running"
    STOPPED = "stopped"
    CONCLUDED = "concluded"


class MetricKind(StrEnum):
    """How a metric turns a unit's events (or a variant's predictions) into numbers."""

    CONVERSION = "conversion"
    COUNT = "count"
    MEAN = "mean"
    RATIO = "ratio"
    AUC = "auc"
    LOG_LOSS = "log_loss"
    BRIER = "brier"
    ACCURACY = "accuracy"
    CALIBRATION_ERROR = "calibration_error"
    RMSE = "rmse"
    MAE = "mae"

    @property
    def is_ml(self) -> bool:
        """True for metrics computed from predictions and labels."""
        return self not in _BUSINESS_KINDS


_BUSINESS_KINDS = frozenset(
    {MetricKind.CONVERSION, MetricKind.COUNT, MetricKind.MEAN, MetricKind.RATIO}
)


class MetricRole(StrEnum):
    """What a metric is for in the decision."""

    PRIMARY = "primary"
    GUARDRAIL = "guardrail"
    SECONDARY = "secondary"
    ML = "ml"


class AnalysisMethod(StrEnum):
    """Which statistical engine judges the experiment."""

    FIXED = "fixed"
    SEQUENTIAL = "sequential"
    GROUP_SEQUENTIAL = "group_sequential"
    BAYESIAN = "bayesian"


class Correction(StrEnum):
    """Multiple-comparison correction across treatments on the primary metric."""

    HOLM = "holm"
    BONFERRONI = "bonferroni"
    BH = "bh"
    NONE = "none"


class MarginType(StrEnum):
    """How a guardrail's margin is measured."""

    RELATIVE = "relative"
    ABSOLUTE = "absolute"


class DecisionStatus(StrEnum):
    """The verdict of an analysis (DESIGN.md ``decision.status``)."""

    SHIP = "ship"
    ROLLBACK = "rollback"
    KEEP_RUNNING = "keep_running"
    NO_EFFECT = "no_effect"
    INVALID = "invalid"
    WAITING = "waiting"


class ConclusionDecision(StrEnum):
    """What a person decided when concluding an experiment."""

    SHIP = "ship"
    ROLLBACK = "rollback"
    ITERATE = "iterate"


class ApiScope(StrEnum):
    """What an API key may call."""

    INGEST = "ingest"
    ADMIN = "admin"
