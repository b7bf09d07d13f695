"""Run the web app under gunicorn (``xp serve``, ``xp demo``)."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from experiments.config import Settings


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from web import create_app

        return create_app(self.settings)


def run_server(settings: Settings, host: str, port: int, workers: int) -> None:
    """Serve until interrupted; each worker builds its own app and engine."""
    options = {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "sync",
        "timeout": 120,
        "graceful_timeout": 10,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "preload_app": False,
        # gunicorn's control socket lives at one path per user: two servers on
        # one machine (tests, several instances) would fight over it.
        "control_socket_disable": True,
    }
    _Gunicorn(settings, options).run()
