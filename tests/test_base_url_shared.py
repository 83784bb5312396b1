"""Issue 24, item 9: a second shell writes links to the port the site is served on.

`flask serve` (make run) records its address in instance/base_url; a process in the
same folder without FUNNEL_BASE_URL uses it, and one whose address differs says so."""

from __future__ import annotations

import pytest
import werkzeug.serving

from funnel import create_app
from tests.conftest import sign_up_and_confirm


@pytest.fixture
def instance(tmp_path, monkeypatch):
    monkeypatch.delenv("FUNNEL_BASE_URL", raising=False)
    monkeypatch.setattr(werkzeug.serving, "run_simple", lambda *a, **k: None)
    return tmp_path / "instance"


def _app(app_config, instance, **extra):
    config = {k: v for k, v in app_config.items() if k != "FUNNEL_BASE_URL"}
    return create_app({**config, "INSTANCE_PATH": str(instance), **extra})


def test_a_worker_in_a_second_shell_writes_links_to_the_served_port(app_config, instance,
                                                                     outbox):
    server = _app(app_config, instance)
    result = server.test_cli_runner().invoke(args=["serve", "--port", "7231", "--no-worker"])
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:7231" in result.output
    assert (instance / "base_url").read_text().strip() == "http://127.0.0.1:7231"
    # The site itself now answers with links to 7231.
    assert server.extensions["funnel"].composer.links.confirm("x").startswith(
        "http://127.0.0.1:7231/confirm/")

    # "Another terminal": a fresh process-like app, nothing exported.
    second = _app(app_config, instance)
    client = second.test_client()
    sign_up_and_confirm(client, outbox, "runner@example.com")
    result = second.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "warning" not in result.output
    text = outbox.text(outbox.to("runner@example.com")[-1])
    assert "http://127.0.0.1:7231/unsubscribe/" in text
    assert ":5000" not in text


def test_a_worker_with_another_address_says_so(app_config, instance, monkeypatch):
    server = _app(app_config, instance)
    assert server.test_cli_runner().invoke(
        args=["serve", "--port", "7231", "--no-worker"]).exit_code == 0
    monkeypatch.setenv("FUNNEL_BASE_URL", "http://127.0.0.1:5000")
    other = _app(app_config, instance)
    result = other.test_cli_runner().invoke(args=["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "warning: this process writes links to http://127.0.0.1:5000" in result.output
    assert "http://127.0.0.1:7231" in result.output


def test_make_run_passes_the_port_to_serve_and_exports_no_fixed_address():
    """A fixed FUNNEL_BASE_URL exported by make would make `make worker` disagree
    with `make run PORT=7231` again."""
    import subprocess

    from funnel.config import PROJECT_ROOT

    out = subprocess.run(["make", "-s", "-n", "-W", ".venv/bin/.installed", "run", "PORT=7231"],
                         cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout
    assert "PORT=7231" in out and "serve" in out
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert "export FUNNEL_BASE_URL" not in makefile
