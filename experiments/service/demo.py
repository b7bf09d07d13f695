"""The demo: two realistic recommender experiments with 14 days of traffic.

1. ``ranker-v2``: a new ranker whose model has the better AUC but lowers the
   take rate (plays / impressions), the business KPI: the report says roll
   back and raises ``ml_divergence`` — the story xp exists to tell.
2. ``objective-weights``: the same ranker with new objective weights
   (engagement 0.7, quality 0.3) — no retraining — lifts the take rate
   without hurting revenue per user: ship, then promote.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from experiments.config import Settings
from experiments.service.analysis import run_analysis
from experiments.service.experiments import create_experiment, start_experiment
from experiments.service.keys import create_api_key
from experiments.service.simulation import SimulationPlan, simulate_traffic
from experiments.service.specs import validate_spec
from experiments.service.users import create_user, set_password
from experiments.storage import accounts, queries

DAYS = 14
DEMO_ADMIN = "demo-admin@example.com"

_METRICS: list[dict[str, Any]] = [
    {
        "name": "take_rate",
        "kind": "ratio",
        "numerator": "play",
        "denominator": "impression",
        "role": "primary",
    },
    {
        "name": "revenue",
        "kind": "mean",
        "event": "purchase",
        "role": "guardrail",
        "margin": 0.1,
        "cap": {"percentile": 99.5},
    },
    {"name": "converted", "kind": "conversion", "event": "purchase", "role": "secondary"},
    {"name": "plays_per_user", "kind": "count", "event": "play", "role": "secondary"},
    {"name": "ranker_auc", "kind": "auc", "role": "ml"},
    {"name": "ranker_log_loss", "kind": "log_loss", "role": "ml"},
]

DEMO_SPECS: list[dict[str, Any]] = [
    {
        "key": "ranker-v2",
        "name": "Ranker v2 (better AUC) against ranker v1",
        "hypothesis": "The new ranker's better offline AUC raises take rate",
        "layer": "home-feed",
        "traffic": 0.4,
        "variants": [
            {"key": "control", "weight": 0.5, "is_control": True, "params": {"model": "ranker_a"}},
            {"key": "treatment", "weight": 0.5, "params": {"model": "ranker_b"}},
        ],
        "metrics": _METRICS,
        "mde": 0.03,
    },
    {
        "key": "objective-weights",
        "name": "Objective weights: engagement 0.7 / quality 0.3",
        "hypothesis": "Weighting quality in the ranking score lifts take rate without retraining",
        "layer": "home-feed",
        "traffic": 0.6,
        "variants": [
            {
                "key": "control",
                "weight": 0.5,
                "is_control": True,
                "params": {"model": "ranker_a", "objective_weights": {"engagement": 1.0}},
            },
            {
                "key": "treatment",
                "weight": 0.5,
                "params": {
                    "model": "ranker_a",
                    "objective_weights": {"engagement": 0.7, "quality": 0.3},
                },
            },
        ],
        "metrics": _METRICS,
        "mde": 0.03,
    },
]

_PLANS = {
    # Better model (AUC), worse business KPI.
    "ranker-v2": {
        "effects": {"treatment": {"play": 0.93, "purchase": 0.97}},
        "model_quality": {"control": 0.8, "treatment": 1.3},
        "seed": 7,
    },
    # Same model, better trade-off between objectives.
    "objective-weights": {
        "effects": {"treatment": {"play": 1.06, "purchase": 1.0}},
        "model_quality": {"control": 0.8, "treatment": 0.8},
        "seed": 11,
    },
}


def seed_demo(
    session: Session,
    *,
    settings: Settings,
    now: datetime,
    users: int = 20_000,
    on_progress: Callable[[int], None] | None = None,
    actor: str,
) -> list[str]:
    """Create, start, simulate and analyse the demo experiments; returns summary lines."""
    lines: list[str] = []
    started = now - timedelta(days=DAYS)
    for document in DEMO_SPECS:
        key = document["key"]
        if queries.find_experiment(session, key) is not None:
            lines.append(f"{key}: already in the database, kept as it is")
            if on_progress is not None:
                on_progress(users)
            continue
        create_experiment(session, validate_spec(document), actor=actor, now=started)
        experiment = start_experiment(session, key, actor=actor, now=started)
        plan = _PLANS[key]
        result = simulate_traffic(
            session,
            key,
            SimulationPlan(
                users=users,
                days=DAYS,
                seed=int(plan["seed"]),  # type: ignore[call-overload]
                rates={"impression": 6.0, "play": 0.25, "purchase": 0.3},
                effects=plan["effects"],  # type: ignore[arg-type]
                model_quality=plan["model_quality"],  # type: ignore[arg-type]
            ),
            settings=settings,
            now=now,
            on_progress=on_progress,
        )
        snapshot = run_analysis(session, key, settings=settings, now=now)
        decision = snapshot.report["decision"]
        lines.append(
            f"{key}: {result.exposed} units exposed, {result.events} events,"
            f" {result.predictions} predictions; decision {decision['status']}"
            f" (ml_divergence {str(decision.get('ml_divergence')).lower()})"
        )
        del experiment
    _, token = create_api_key(session, scope="admin", name="demo admin", actor=actor, now=now)
    lines.append(f"admin API key for the demo: {token}")
    return lines


def ensure_demo_admin(session: Session, *, actor: str, now: datetime) -> tuple[str, str]:
    """The demo's admin account with a fresh password: ``(email, password)``.

    Created on the first run; later runs give it a new password (the old one was
    never stored in clear, so it cannot be shown again).
    """
    password = secrets.token_urlsafe(12)
    if accounts.find_user_by_email(session, DEMO_ADMIN) is None:
        create_user(session, DEMO_ADMIN, role="admin", password=password, actor=actor, now=now)
    else:
        set_password(session, DEMO_ADMIN, password)
    return DEMO_ADMIN, password
