"""The xp tables, as typed SQLAlchemy 2.0 models.

Table names ``events``, ``exposures``, ``predictions`` and ``labels`` are part of
the public contract (DESIGN.md "Storage").
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from experiments.storage.base import Base, BigId, UTCDateTime


class Layer(Base):
    """A namespace of 10,000 buckets shared by mutually exclusive experiments."""

    __tablename__ = "layers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    salt: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())

    experiments: Mapped[list[Experiment]] = relationship(back_populates="layer")


class Experiment(Base):
    """An experiment: its definition, lifecycle and recorded decision."""

    __tablename__ = "experiments"
    __table_args__ = (
        CheckConstraint("traffic >= 0 AND traffic <= 1", name="traffic_range"),
        CheckConstraint(
            "status IN ('draft', 'running', 'stopped', 'concluded')", name="status_known"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    hypothesis: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    layer_id: Mapped[int | None] = mapped_column(ForeignKey("layers.id"))
    # The layer buckets this experiment owns while running: [[start, end), ...].
    buckets: Mapped[list[list[int]] | None] = mapped_column(JSON)
    traffic: Mapped[float] = mapped_column(Float, default=1.0)
    targeting: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    forced: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    salt: Mapped[str] = mapped_column(String(64))
    # Incremented by a reshuffle; exposures of earlier epochs leave the analysis.
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    alpha: Mapped[float] = mapped_column(Float, default=0.05)
    power: Mapped[float] = mapped_column(Float, default=0.8)
    mde: Mapped[float] = mapped_column(Float, default=0.05)
    method: Mapped[str] = mapped_column(String(16), default="fixed")
    correction: Mapped[str | None] = mapped_column(String(16))
    planned_n: Mapped[int | None] = mapped_column(Integer)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    analysis_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    stopped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    concluded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decision: Mapped[str | None] = mapped_column(String(16))
    decision_variant: Mapped[str | None] = mapped_column(String(64))
    decision_rationale: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Who created it (a user's email, an API key's name or cli:USER); None before 0004.
    owner: Mapped[str | None] = mapped_column(String(254))
    # Hidden from the experiment list, kept in the database.
    archived_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    layer: Mapped[Layer | None] = relationship(back_populates="experiments")
    variants: Mapped[list[Variant]] = relationship(
        back_populates="experiment",
        order_by="Variant.position",
        cascade="all, delete-orphan",
    )
    metrics: Mapped[list[Metric]] = relationship(
        back_populates="experiment",
        order_by="Metric.position",
        cascade="all, delete-orphan",
    )


class Variant(Base):
    """One variant of an experiment, with what the product needs to serve it."""

    __tablename__ = "variants"
    __table_args__ = (
        UniqueConstraint("experiment_id", "key"),
        CheckConstraint("weight > 0 AND weight <= 1", name="weight_range"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(Integer)
    weight: Mapped[float] = mapped_column(Float)
    is_control: Mapped[bool] = mapped_column(Boolean, default=False)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    experiment: Mapped[Experiment] = relationship(back_populates="variants")


class Metric(Base):
    """A metric of an experiment with its role; ``definition`` holds the full spec."""

    __tablename__ = "metrics"
    __table_args__ = (
        UniqueConstraint("experiment_id", "name"),
        CheckConstraint("role IN ('primary', 'guardrail', 'secondary', 'ml')", name="role_known"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16))
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)

    experiment: Mapped[Experiment] = relationship(back_populates="metrics")


class Exposure(Base):
    """The first time a unit was served a variant of an experiment (per epoch)."""

    __tablename__ = "exposures"
    __table_args__ = (
        UniqueConstraint("experiment_id", "epoch", "unit_id"),
        # "New data since the snapshot": exposures of one experiment received after a time.
        Index("ix_exposures_experiment_id_received_at", "experiment_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    unit_id: Mapped[str] = mapped_column(String(256))
    variant: Mapped[str] = mapped_column(String(64))
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Event(Base):
    """Something a unit did; ``event_id`` is the client's idempotency key."""

    __tablename__ = "events"
    __table_args__ = (
        # The analysis join: a unit's events of some names in a time window.
        Index("ix_events_unit_id_name_timestamp", "unit_id", "name", "timestamp"),
        # Planning: every event of the last N days.
        Index("ix_events_timestamp", "timestamp"),
        # "New data since the snapshot": events received after a time.
        Index("ix_events_received_at", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    unit_id: Mapped[str] = mapped_column(String(256))
    name: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float, default=1.0)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Prediction(Base):
    """A model's score for a unit, served by a variant of an experiment."""

    __tablename__ = "predictions"
    __table_args__ = (
        Index("ix_predictions_experiment_id_variant", "experiment_id", "variant"),
        Index("ix_predictions_experiment_id_model", "experiment_id", "model"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    prediction_id: Mapped[str] = mapped_column(String(64), unique=True)
    unit_id: Mapped[str] = mapped_column(String(256))
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    variant: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    score: Mapped[float] = mapped_column(Float)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Label(Base):
    """The observed outcome of a prediction; may arrive before the prediction."""

    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    prediction_id: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[float] = mapped_column(Float)
    timestamp: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AnalysisSnapshot(Base):
    """One analysis: its inputs (sufficient statistics), settings and the report."""

    __tablename__ = "analysis_snapshots"
    __table_args__ = (
        Index("ix_analysis_snapshots_experiment_id_computed_at", "experiment_id", "computed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"))
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    engine_version: Mapped[str] = mapped_column(String(32))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)


class User(Base):
    """A person who signs in to the web UI, with a role (viewer, editor, admin)."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('viewer', 'editor', 'admin')", name="role_known"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Stored lower-cased, so one address is one account.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16), default="viewer")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class LoginAttempt(Base):
    """A login attempt in flight or failed: the rate limit counts these rows.

    Shared by every worker and host through the database. A successful login
    deletes its row; rows older than the window are pruned as new ones arrive.
    """

    __tablename__ = "login_attempts"
    __table_args__ = (
        Index("ix_login_attempts_email_at", "email", "at"),
        Index("ix_login_attempts_address_at", "address", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime())


class AuditEntry(Base):
    """One change: who did what to which experiment, key or user, and the values.

    Written by the service that makes the change, in the same transaction.
    """

    __tablename__ = "audit_log"
    __table_args__ = (
        CheckConstraint(
            "action IN ('create', 'edit', 'start', 'ramp', 'stop', 'restart', 'archive',"
            " 'conclude', 'promote', 'unpromote', 'key_create', 'key_revoke', 'user_create',"
            " 'user_disable')",
            name="action_known",
        ),
        Index("ix_audit_log_experiment_id_id", "experiment_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(32))
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id"))
    # The experiment's key, the API key's prefix or the user's email.
    target: Mapped[str] = mapped_column(String(254))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ApiKey(Base):
    """An API key, stored as its SHA-256 digest; ``prefix`` identifies it to people."""

    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint("scope IN ('ingest', 'admin')", name="scope_known"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scope: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Updated at most once a minute per key, so authenticating stays a read.
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ConfigVersion(Base):
    """One row counting changes to what assignment and authentication read.

    Bumped in the transaction of every change to an experiment, variant,
    metric, layer or API key (``storage/config_version.py``), so each server
    worker checks one indexed row per request and rebuilds its cached config
    only when it moved.
    """

    __tablename__ = "config_version"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(BigInteger, default=0)
