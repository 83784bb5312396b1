"""The check-up's two fronts: ``flask deliverability check`` (exit code for deploy
scripts) and the admin's Sending page, over the same DNS server on loopback."""

from __future__ import annotations

import re

import pytest

from tests.dns_support import DOMAIN, DNSServer


@pytest.fixture
def dns_server():
    with DNSServer() as server:
        yield server


@pytest.fixture
def app_config(app_config, dns_server):
    return {**app_config, "MAIL_FROM": f"Run Stronger <plan@{DOMAIN}>",
            "MAIL_TRANSPORT": "sendgrid", "SENDGRID_API_KEY": "SG.test",
            "DNS_RESOLVER": dns_server.address, "DNS_TIMEOUT": 1.0,
            "SENDGRID_DNS_NAMES": ["em1234", "url5678", "5678"]}


def test_the_command_passes_a_well_set_domain(runner):
    result = runner.invoke(args=["deliverability", "check"])
    assert result.exit_code == 0, result.output
    assert re.search(r"PASS\s+SPF\s+v=spf1 include:sendgrid.net ~all", result.output)
    assert "FAIL" not in result.output and "10 checks: pass" in result.output


def test_the_command_exits_non_zero_and_says_what_to_add(runner, dns_server):
    del dns_server.zone[(f"_dmarc.{DOMAIN}", "TXT")]
    result = runner.invoke(args=["deliverability", "check"])
    assert result.exit_code == 1
    assert "FAIL  DMARC" in result.output
    assert f'add: _dmarc.{DOMAIN} TXT "v=DMARC1; p=none; rua=mailto:dmarc@{DOMAIN}"' \
        in result.output


def test_a_warning_alone_does_not_fail_a_deploy(runner, dns_server):
    dns_server.zone[(f"_dmarc.{DOMAIN}", "TXT")] = ["v=DMARC1; p=none"]
    result = runner.invoke(args=["deliverability", "check"])
    assert result.exit_code == 0 and "WARN  DMARC" in result.output


def test_a_free_mail_from_fails_the_command(app, runner):
    app.config["MAIL_FROM"] = "Coach <fast.coach@gmail.com>"
    result = runner.invoke(args=["deliverability", "check"])
    assert result.exit_code == 1 and "gmail.com is a free-mail domain" in result.output


def test_the_admin_page_shows_each_line_and_the_record_to_add(logged_in, dns_server):
    del dns_server.zone[(f"s2._domainkey.{DOMAIN}", "CNAME")]
    page = logged_in.get("/admin/sending/").get_data(as_text=True)
    assert 'data-verdict="fail"' in page
    assert 'data-check="DKIM s2" data-level="fail"' in page
    assert 'data-check="SPF" data-level="pass"' in page
    assert f"s2._domainkey.{DOMAIN} CNAME s2.domainkey." in page


def test_the_admin_page_needs_a_login(client):
    assert client.get("/admin/sending/").status_code in (302, 303)
