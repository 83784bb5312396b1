"""A plan link's token works like a password for that reader's plan: neither
gunicorn's access log nor nginx's (deploy/nginx.conf) may keep it whole."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

TOKEN = "ImFiY2RlZmdoaWprbG1ub3AxMjM0NTY3OCI.Z1k2aQ.x9P-Qsecretpart_ABCDEFGHIJ"
PATHS = [f"/plan/{TOKEN}", f"/plan/{TOKEN}.pdf", f"/preferences/{TOKEN}/data.json"]


def _gunicorn_line(path: str, capsys, json_lines: bool, monkeypatch) -> str:
    from gunicorn.config import Config

    from funnel.operations.gunicorn_log import ACCESS_FORMAT, Logger

    monkeypatch.setenv("LOG_FORMAT", "json" if json_lines else "text")
    cfg = Config()
    cfg.set("accesslog", "-")
    cfg.set("access_log_format", ACCESS_FORMAT)  # as deploy/gunicorn.conf.py sets it
    logger = Logger(cfg)
    environ = {"REQUEST_METHOD": "GET", "RAW_URI": path, "PATH_INFO": path, "QUERY_STRING": "",
               "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "127.0.0.1"}
    resp = SimpleNamespace(status="200 OK", status_code=200, response_length=10, sent=10,
                           headers=[("X-Request-ID", "abcdefgh12")])
    req = SimpleNamespace(headers=[("USER-AGENT", "probe")])
    logger.access(resp, req, environ, dt.timedelta(milliseconds=3))
    for handler in logger.access_log.handlers:
        handler.flush()
    return capsys.readouterr().out


@pytest.mark.parametrize("json_lines", [False, True], ids=["text", "json"])
@pytest.mark.parametrize("path", PATHS)
def test_gunicorn_access_lines_keep_no_personal_token(path, json_lines, capsys, monkeypatch):
    line = _gunicorn_line(path, capsys, json_lines, monkeypatch)
    assert line.strip(), "no access line was written"
    assert "secretpart" not in line and TOKEN[:20] not in line
    assert "/[token]" in line  # the kind of page stays readable


def _nginx_map() -> list[tuple[re.Pattern[str], str]]:
    """The ``map $request_uri $funnel_log_uri`` block of deploy/nginx.conf, as Python
    regexes (PCRE's ``(?<name>`` is Python's ``(?P<name>``)."""
    conf = (Path(__file__).resolve().parent.parent / "deploy" / "nginx.conf").read_text()
    block = re.search(r"map \$request_uri \$funnel_log_uri \{(.*?)\n\}", conf, re.S)
    assert block, "deploy/nginx.conf has no funnel_log_uri map"
    rules = []
    for pattern, value in re.findall(r'"~(.+?)"\s+"(.+?)";', block.group(1)):
        rules.append((re.compile(pattern.replace("(?<", "(?P<")), value))
    return rules


def _nginx_logged(uri: str) -> str:
    for pattern, value in _nginx_map():
        found = pattern.search(uri)
        if found:
            return re.sub(r"\$\{(\w+)\}", lambda v, f=found: f.group(v.group(1)), value)
    return uri.split("?")[0]  # the map's default: $uri, without the query


@pytest.mark.parametrize("path", PATHS + [f"/unsubscribe/{TOKEN}", f"/confirm/{TOKEN}"])
def test_nginx_logs_only_the_kind_of_personal_link(path):
    logged = _nginx_logged(path)
    assert TOKEN[:20] not in logged and "secretpart" not in logged
    assert logged.endswith("[token]")


def test_ordinary_pages_are_logged_as_they_are():
    assert _nginx_logged("/free-plan?utm_source=x") == "/free-plan"
    assert _nginx_logged("/media/plan-week-1.png") == "/media/plan-week-1.png"
