"""The CLI and the HTTP API end to end: a real gunicorn server, a real database."""

import json

import httpx

from tests.factories import spec_document


def test_the_whole_loop_through_cli_and_http(live_server, tmp_path):
    admin = live_server.create_key("admin")
    ingest = live_server.create_key("ingest")
    assert admin.startswith("xp_")
    assert admin != ingest
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps([spec_document(), spec_document(key="second", traffic=0.5)]))
    applied = live_server.run_cli("experiments", "apply", str(spec))
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.split("\n")[:2] == ["created ranker-v2", "created second"]
    again = live_server.run_cli("experiments", "apply", str(spec))
    assert "unchanged ranker-v2" in again.stdout
    assert live_server.run_cli("experiments", "start", "ranker-v2").returncode == 0

    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        headers = {"Authorization": f"Bearer {ingest}"}
        got = http.post("/api/v1/assign", json={"unit_id": "user-1"}, headers=headers).json()
        assert got["assignments"]["ranker-v2"]["in_experiment"] is True
        assert "second" not in got["assignments"]  # a draft is not served
        event = {"event_id": "e-1", "unit_id": "user-1", "name": "play"}
        assert http.post("/api/v1/events", json={"events": [event]}, headers=headers).json() == {
            "accepted": 1,
            "duplicates": 0,
        }
        forbidden = http.get("/api/v1/experiments", headers=headers)
        assert forbidden.status_code == 403

    simulated = live_server.run_cli("simulate", "ranker-v2", "--users", "400", "--days", "3")
    assert simulated.returncode == 0, simulated.stderr
    report = live_server.run_cli("report", "ranker-v2", "--format", "json", "--refresh")
    assert report.returncode == 0, report.stderr
    document = json.loads(report.stdout)  # exactly one JSON document on stdout
    assert {"alpha", "method", "control", "srm", "metrics", "decision"} <= set(document)
    assert document["metrics"]["take_rate"]["role"] == "primary"
    assert sum(document["srm"]["observed"].values()) > 0
    assert "NaN" not in report.stdout
    with httpx.Client(base_url=live_server.url, timeout=30) as http:
        api_report = http.get(
            "/api/v1/experiments/ranker-v2/report", headers={"Authorization": f"Bearer {admin}"}
        ).json()
    assert api_report["srm"] == document["srm"]
    markdown = live_server.run_cli("report", "ranker-v2", "--format", "markdown")
    assert markdown.returncode == 0
    assert "take_rate" in markdown.stdout
    html = tmp_path / "report.html"
    exported = live_server.run_cli("report", "ranker-v2", "--format", "html", "--output", str(html))
    assert exported.returncode == 0, exported.stderr
    exported_html = html.read_text()
    assert 'src="http' not in exported_html
    assert "plotly" in exported_html.lower()
    analysed = live_server.run_cli("analyze", "--all")
    assert analysed.returncode == 0
    assert "1 experiment(s) analysed" in analysed.stderr
    concluded = live_server.run_cli(
        "experiments",
        "conclude",
        "ranker-v2",
        "--decision",
        "ship",
        "--variant",
        "treatment",
        "--rationale",
        "take rate up",
    )
    assert concluded.returncode == 0, concluded.stderr
    assert live_server.run_cli("experiments", "promote", "ranker-v2").returncode == 0


def test_bad_input_exits_2_with_one_line(live_server, tmp_path):
    unknown = live_server.run_cli("report", "nope", "--format", "json")
    assert unknown.returncode == 2
    assert unknown.stdout == ""
    assert unknown.stderr.strip() == "error: experiment 'nope' does not exist"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(spec_document(alpha=3)))
    result = live_server.run_cli("experiments", "apply", str(bad))
    assert result.returncode == 2
    assert "alpha: must be < 0.5" in result.stderr
    state = live_server.run_cli("experiments", "stop", "ranker-v2")
    assert state.returncode == 2  # unknown experiment
    upgraded = live_server.run_cli("db", "upgrade")  # already at head: a no-op that succeeds
    assert upgraded.returncode == 0


def test_serve_refuses_an_unmigrated_database(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("XP_")}
    env.update(
        XP_DATABASE_URL=f"sqlite:///{tmp_path}/empty.sqlite3", XP_INSTANCE_PATH=str(tmp_path)
    )
    result = subprocess.run(
        [sys.executable, "-m", "experiments.cli", "serve", "--port", "1"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "run `xp db upgrade` first" in result.stderr
