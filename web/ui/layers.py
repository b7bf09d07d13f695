"""The layers page: each layer's 10,000 buckets, who owns them, and the free share."""

from __future__ import annotations

from flask import render_template

from experiments.domain import UserRole
from experiments.service.overview import layer_occupancy
from web.db import get_session
from web.permissions import requires
from web.ui import bp


@bp.get("/layers")
@requires(UserRole.VIEWER)
def layers() -> str:
    return render_template("ui/layers.html", layers=layer_occupancy(get_session()))
