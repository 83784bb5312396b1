"""The deliverability check-up against a DNS server on loopback: right for a
well-set domain and for each missing or wrong record."""

from __future__ import annotations

import pytest

from funnel.deliverability.checkup import FAIL, PASS, WARN, check, provider_for
from funnel.deliverability.resolver import make_lookup
from tests.dns_support import DOMAIN, DNSServer, good_zone

FROM = f"Run Stronger <plan@{DOMAIN}>"
NAMES = ["em1234", "url5678", "5678"]


@pytest.fixture
def dns_server():
    with DNSServer() as server:
        yield server


def run(server: DNSServer, transport: str = "sendgrid", mail_from: str = FROM,
        selectors: tuple[str, ...] = (), smtp_host: str = "", names=NAMES):  # type: ignore[no-untyped-def]
    lookup = make_lookup(server.address, timeout=1.0)
    return check(mail_from, provider_for(transport, smtp_host, selectors), lookup, names)


def levels(lines) -> dict[str, str]:  # type: ignore[no-untyped-def]
    out: dict[str, str] = {}
    for line in lines:  # the worst line per check
        if out.get(line.check) != FAIL and not (out.get(line.check) == WARN and line.level == PASS):
            out[line.check] = line.level
    return out


def the(lines, name: str):  # type: ignore[no-untyped-def]
    return [line for line in lines if line.check == name]


def test_a_well_set_domain_passes_everything(dns_server):
    lines = run(dns_server)
    assert set(levels(lines).values()) == {PASS}, lines
    assert {"From", "SPF", "DKIM s1", "DKIM s2", "DMARC", "DMARC alignment", "MX",
            f"SendGrid em1234.{DOMAIN}", f"SendGrid url5678.{DOMAIN}",
            f"SendGrid 5678.{DOMAIN}"} == set(levels(lines))
    assert ("s1._domainkey." + DOMAIN, "CNAME") in dns_server.questions


@pytest.mark.parametrize("free", ["gmail.com", "outlook.com", "yahoo.com", "hotmail.com",
                                  "icloud.com", "GMail.com"])
def test_a_free_mail_from_is_refused_with_the_reason(dns_server, free):
    [line] = run(dns_server, mail_from=f"Coach <coach@{free}>")
    assert line.level == FAIL and "free-mail" in line.detail and "domain you own" in line.detail
    assert dns_server.questions == []  # nothing to look up


def test_missing_spf(dns_server):
    dns_server.zone[(DOMAIN, "TXT")] = ["google-site-verification=abc"]
    [line] = the(run(dns_server), "SPF")
    assert line.level == FAIL
    assert line.record == f'{DOMAIN} TXT "v=spf1 include:sendgrid.net ~all"'


def test_spf_without_the_provider(dns_server):
    dns_server.zone[(DOMAIN, "TXT")] = ["v=spf1 include:_spf.google.com ~all"]
    [line] = the(run(dns_server), "SPF")
    assert line.level == FAIL and "does not include sendgrid.net" in line.detail
    assert line.record == f'{DOMAIN} TXT "v=spf1 include:_spf.google.com include:sendgrid.net ~all"'


def test_spf_includes_the_provider_through_a_nested_include(dns_server):
    dns_server.zone[(DOMAIN, "TXT")] = ["v=spf1 include:_spf.runstronger.example -all"]
    dns_server.zone[("_spf.runstronger.example", "TXT")] = ["v=spf1 include:sendgrid.net ~all"]
    assert levels(run(dns_server))["SPF"] == PASS


def test_two_spf_records_or_plus_all_fail(dns_server):
    dns_server.zone[(DOMAIN, "TXT")] = ["v=spf1 include:sendgrid.net ~all", "v=spf1 mx ~all"]
    assert "permerror" in the(run(dns_server), "SPF")[0].detail
    dns_server.zone[(DOMAIN, "TXT")] = ["v=spf1 include:sendgrid.net +all"]
    assert levels(run(dns_server))["SPF"] == FAIL


def test_missing_or_foreign_dkim(dns_server):
    del dns_server.zone[(f"s2._domainkey.{DOMAIN}", "CNAME")]
    dns_server.zone[(f"s1._domainkey.{DOMAIN}", "CNAME")] = ["s1.domainkey.elsewhere.example"]
    lines = run(dns_server)
    assert levels(lines)["DKIM s1"] == FAIL and "not at SendGrid" in the(lines, "DKIM s1")[0].detail
    s2 = the(lines, "DKIM s2")[0]
    assert s2.level == FAIL and s2.record.startswith(f"s2._domainkey.{DOMAIN} CNAME s2.domainkey.")


def test_dkim_selectors_with_txt_keys_for_another_provider(dns_server):
    dns_server.zone[(DOMAIN, "TXT")] = ["v=spf1 include:spf.mtasv.net ~all"]
    dns_server.zone[(f"pm._domainkey.{DOMAIN}", "TXT")] = ["k=rsa; p=MIGfMA0GCSqGSIb3DQEB"]
    dns_server.zone[(f"old._domainkey.{DOMAIN}", "TXT")] = ["v=DKIM1; p="]
    lines = run(dns_server, transport="smtp", smtp_host="smtp.postmarkapp.com",
                selectors=("pm", "old", "k9"))
    got = levels(lines)
    assert got["SPF"] == PASS  # Postmark's include recognised from the SMTP host
    assert (got["DKIM pm"], got["DKIM old"], got["DKIM k9"]) == (PASS, FAIL, FAIL)
    assert "revoked" in the(lines, "DKIM old")[0].detail
    assert not any(line.check.startswith("SendGrid") for line in lines)


def test_no_selectors_for_smtp_is_a_warning(dns_server):
    assert levels(run(dns_server, transport="smtp", smtp_host="mail.example.org"))["DKIM"] == WARN


def test_missing_dmarc(dns_server):
    del dns_server.zone[(f"_dmarc.{DOMAIN}", "TXT")]
    [line] = the(run(dns_server), "DMARC")
    assert line.level == FAIL and "require" in line.detail
    assert line.record == f'_dmarc.{DOMAIN} TXT "v=DMARC1; p=none; rua=mailto:dmarc@{DOMAIN}"'


def test_dmarc_policy_none_warns_and_a_bad_policy_fails(dns_server):
    dns_server.zone[(f"_dmarc.{DOMAIN}", "TXT")] = ["v=DMARC1; p=none"]
    line = the(run(dns_server), "DMARC")[0]
    assert line.level == WARN and "p=quarantine" in line.record
    dns_server.zone[(f"_dmarc.{DOMAIN}", "TXT")] = ["v=DMARC1; p=maybe"]
    assert levels(run(dns_server))["DMARC"] == FAIL


def test_strict_alignment_warns(dns_server):
    dns_server.zone[(f"_dmarc.{DOMAIN}", "TXT")] = ["v=DMARC1; p=reject; adkim=s; aspf=s"]
    lines = run(dns_server)
    assert levels(lines)["DMARC"] == PASS
    assert levels(lines)["DMARC alignment"] == WARN


def test_a_subdomain_uses_its_parents_dmarc(dns_server):
    zone = good_zone("news.runstronger.example")
    del zone[("_dmarc.news.runstronger.example", "TXT")]
    zone[(f"_dmarc.{DOMAIN}", "TXT")] = ["v=DMARC1; p=reject; sp=quarantine"]
    dns_server.zone = zone
    lines = run(dns_server, mail_from="plan@news.runstronger.example")
    assert the(lines, "DMARC")[0].detail == f"Policy p=quarantine at _dmarc.{DOMAIN}."


def test_missing_mx(dns_server):
    del dns_server.zone[(DOMAIN, "MX")]
    assert levels(run(dns_server))["MX"] == WARN  # an A record still takes mail
    del dns_server.zone[(DOMAIN, "A")]
    assert levels(run(dns_server))["MX"] == FAIL


def test_sendgrid_cnames_missing_or_wrong_or_not_listed(dns_server):
    del dns_server.zone[(f"em1234.{DOMAIN}", "CNAME")]
    dns_server.zone[(f"url5678.{DOMAIN}", "CNAME")] = ["links.example.net"]
    got = levels(run(dns_server))
    assert got[f"SendGrid em1234.{DOMAIN}"] == FAIL
    assert got[f"SendGrid url5678.{DOMAIN}"] == FAIL
    assert got[f"SendGrid 5678.{DOMAIN}"] == PASS
    assert levels(run(dns_server, names=[]))["SendGrid CNAMEs"] == WARN


def test_a_server_that_does_not_answer_is_a_fail_not_a_pass(dns_server):
    dns_server.silent.add(f"_dmarc.{DOMAIN}")
    got = levels(run(dns_server))
    assert got["DMARC"] == FAIL and got["SPF"] == PASS
