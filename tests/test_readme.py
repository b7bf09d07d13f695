"""The README's HTTP examples, run as written against a live demo server.

The shell block of "## HTTP API" is read from README.md: its first line runs as
written in bash (``xp keys create``, on the demo's database); each ``curl``
command is parsed with shlex and sent as the exact same request (method, URL,
headers, body, ``-d @file`` read from the repository), to the live server's port
instead of 8000.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, LiveServer, free_port

pytestmark = pytest.mark.server


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## HTTP API", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [c.strip() for c in block.replace("\\\n", " ").splitlines() if c.strip()]


def curl_request(command: str, variables: dict[str, str], port: int) -> httpx.Request:
    """The request a curl command line makes (the flags the README uses)."""
    for name, value in variables.items():
        command = command.replace(f"${name}", value)
    args = shlex.split(command)
    assert args[0] == "curl", command
    method, headers, body, url = "GET", {}, None, None
    i = 1
    while i < len(args):
        arg = args[i]
        if arg == "-s":
            i += 1
        elif arg == "-X":
            method, i = args[i + 1], i + 2
        elif arg == "-H":
            name, _, value = args[i + 1].partition(":")
            headers[name.strip()] = value.strip()
            i += 2
        elif arg == "-d":
            data = args[i + 1]
            body = (ROOT / data[1:]).read_bytes() if data.startswith("@") else data.encode()
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
            if method == "GET":
                method = "POST"
            i += 2
        else:
            assert url is None, f"unexpected argument {arg!r} in {command}"
            url, i = arg, i + 1
    assert url is not None, command
    assert url.startswith("localhost:8000/"), url
    target = f"http://127.0.0.1:{port}/" + url.split("/", 1)[1]
    return httpx.Request(method, target, headers=headers, content=body)


@pytest.fixture
def demo_server(database_factory: Any, tmp_path: Path) -> Any:
    url = database_factory.create()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XP_")}
    env.pop("TEST_DATABASE_URL", None)
    env.update(
        XP_DATABASE_URL=url,
        XP_INSTANCE_PATH=str(tmp_path / "instance"),
        XP_SECRET_KEY="readme-test",
        XP_LOG_LEVEL="WARNING",
    )
    seeded = subprocess.run(
        [sys.executable, "-m", "experiments.cli", "demo", "--users", "300", "--no-serve"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert seeded.returncode == 0, seeded.stderr
    server = LiveServer(f"http://127.0.0.1:{port}", url, env, port, 2, log=tmp_path / "server.log")
    server.start()
    yield server
    server.stop()


def test_the_readme_http_examples_run_against_the_demo(demo_server: LiveServer) -> None:
    commands = readme_commands()
    assignment = re.fullmatch(r"(\w+)=\$\((.*)\)", commands[0])
    assert assignment is not None, commands[0]
    name, shell = assignment.groups()
    made = subprocess.run(
        ["bash", "-c", shell],
        env=demo_server.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if made.returncode != 0 and not (ROOT / ".venv" / "bin" / "xp").exists():
        pytest.fail("README runs .venv/bin/xp: run `make install` first")
    assert made.returncode == 0, made.stderr
    variables = {name: made.stdout.strip()}
    responses = []
    with httpx.Client(timeout=30) as http:
        for command in commands[1:]:
            response = http.send(curl_request(command, variables, demo_server.port))
            assert response.status_code < 400, (command, response.status_code, response.text)
            responses.append(response)
    created, started, events, report, audit = responses
    assert created.status_code == 201
    assert created.json()["key"] == "checkout-v2"
    assert started.json()["status"] == "running"
    assert events.json() == {"accepted": 1, "duplicates": 0}
    assert report.json()["decision"]["status"] in {"rollback", "ship", "keep_running", "no_effect"}
    assert report.json()["experiment"]["key"] == "ranker-v2"
    entries = audit.json()["entries"]
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("create", "readme"),
        ("start", "readme"),
    ]
    assert json.loads((ROOT / "docs/examples/spec.json").read_text())["key"] == "checkout-v2"
