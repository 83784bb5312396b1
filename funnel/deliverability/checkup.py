"""The deliverability check-up: is MAIL_FROM's domain set up the way Gmail, Yahoo and
Outlook require of bulk senders (SPF, DKIM, DMARC aligned with From), and does it
carry the records the sending provider asks for?

Pure rules over a ``lookup(name, type) -> list of strings`` (funnel/deliverability/
resolver.py asks DNS; the tests answer from a DNS server on loopback). Each line says
pass, warn or fail and, when something is missing or wrong, the record to add.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parseaddr

PASS, WARN, FAIL = "pass", "warn", "fail"

# From addresses at these domains fail DMARC at the big inboxes (their owners
# publish p=reject or p=quarantine), so mail "from" them sent by us is refused.
FREE_MAIL = frozenset({
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "hotmail.co.uk", "live.com",
    "msn.com", "yahoo.com", "yahoo.co.uk", "ymail.com", "rocketmail.com", "icloud.com",
    "me.com", "mac.com", "aol.com", "gmx.com", "gmx.de", "gmx.net", "web.de", "mail.com",
    "proton.me", "protonmail.com", "zoho.com", "yandex.com", "yandex.ru", "mail.ru",
    "fastmail.com", "hey.com", "tutanota.com", "qq.com", "163.com",
})

# What each provider's SPF include is, recognised by the SMTP host name.
SPF_INCLUDES = (
    ("sendgrid", "sendgrid.net"),
    ("postmarkapp.com", "spf.mtasv.net"),
    ("amazonaws.com", "amazonses.com"),
    ("mailgun", "mailgun.org"),
    ("sparkpost", "sparkpostmail.com"),
    ("mailjet", "spf.mailjet.com"),
    ("brevo", "spf.brevo.com"),
    ("sendinblue", "spf.brevo.com"),
)

Lookup = Callable[[str, str], list[str]]


class LookupFailed(Exception):
    """DNS did not answer (a timeout, SERVFAIL): we cannot say pass or fail."""


@dataclass(frozen=True)
class Line:
    check: str  # "SPF", "DKIM s1", "DMARC", ...
    level: str  # pass / warn / fail
    detail: str
    record: str = ""  # the DNS record to add or change, ready to paste


@dataclass(frozen=True)
class Provider:
    name: str  # "SendGrid", "SMTP (smtp.postmarkapp.com)", "the outbox"
    spf_include: str | None  # None: unknown, the operator must check
    dkim_selectors: tuple[str, ...]
    sendgrid: bool = False


def provider_for(transport: str, smtp_host: str, selectors: Sequence[str]) -> Provider:
    if transport == "sendgrid":
        return Provider("SendGrid", "sendgrid.net", tuple(selectors) or ("s1", "s2"), True)
    if transport == "smtp":
        include = next((inc for key, inc in SPF_INCLUDES if key in smtp_host.lower()), None)
        return Provider(f"SMTP ({smtp_host})", include, tuple(selectors))
    return Provider("the outbox (development: nothing is sent)", None, tuple(selectors))


def from_domain(mail_from: str) -> str:
    return parseaddr(mail_from)[1].rpartition("@")[2].strip().lower().rstrip(".")


def check(mail_from: str, provider: Provider, lookup: Lookup,
          sendgrid_names: Sequence[str] = ()) -> list[Line]:
    domain = from_domain(mail_from)
    if not domain or "." not in domain:
        return [Line("From", FAIL, f"MAIL_FROM ({mail_from!r}) has no domain to check.")]
    if domain in FREE_MAIL:
        return [Line("From", FAIL,
                     f"{domain} is a free-mail domain: its owner publishes a DMARC policy that "
                     "tells inboxes to reject or junk mail sent in its name from anywhere else, "
                     "and you cannot add SPF or DKIM records to it. Send from a domain you own "
                     "(e.g. news@yourcoaching.com).")]
    lines = [Line("From", PASS, f"{domain} is a domain you can set records on.")]
    for rule in (_spf, _dkim, _dmarc, _mx):
        try:
            lines += rule(domain, provider, lookup)
        except LookupFailed as exc:
            lines.append(Line(rule.__name__.strip("_").upper(), FAIL,
                              f"DNS did not answer: {exc}. Try again; if it persists, "
                              "check the domain's name servers."))
    if provider.sendgrid:
        lines += _sendgrid_names(domain, lookup, sendgrid_names)
    return lines


def worst(lines: Sequence[Line]) -> str:
    levels = {line.level for line in lines}
    return FAIL if FAIL in levels else WARN if WARN in levels else PASS


# -- SPF ---------------------------------------------------------------------------

def _spf_records(name: str, lookup: Lookup) -> list[str]:
    return [t for t in lookup(name, "TXT") if t.lower().startswith("v=spf1")]


def _includes(record: str, include: str, lookup: Lookup, depth: int = 0) -> bool:
    """Whether ``record`` includes ``include``, directly or through nested includes."""
    for term in record.split()[1:]:
        term = term.lstrip("+").lower()
        if term.startswith(("include:", "redirect=")):
            target = term.split(":", 1)[1] if ":" in term else term.split("=", 1)[1]
            if target == include or target.endswith("." + include):
                return True
            if depth < 3:
                nested = _spf_records(target, lookup)
                if nested and _includes(nested[0], include, lookup, depth + 1):
                    return True
    return False


def _spf(domain: str, provider: Provider, lookup: Lookup) -> list[Line]:
    include = provider.spf_include
    wanted = f"{domain} TXT \"v=spf1 include:{include or '<your provider>'} ~all\""
    records = _spf_records(domain, lookup)
    if not records:
        return [Line("SPF", FAIL, "No SPF record: receivers cannot tell who may send for "
                                  f"{domain}.", wanted)]
    if len(records) > 1:
        return [Line("SPF", FAIL, f"{len(records)} SPF records: receivers treat that as an "
                                  "error (permerror). Merge them into one.", wanted)]
    record = records[0]
    terms = record.lower().split()
    lines = []
    if "+all" in terms or "all" in terms:
        lines.append(Line("SPF", FAIL, f"The SPF record ends in +all: anyone may send as "
                                       f"{domain}.", wanted))
    elif not any(t in ("~all", "-all") for t in terms) and not any(
            t.startswith("redirect=") for t in terms):
        lines.append(Line("SPF", WARN, f"The SPF record ({record}) does not end in ~all or "
                                       "-all, so it vouches for nobody in particular.", wanted))
    if include is None:
        lines.append(Line("SPF", WARN, f"Found: {record}. Check it includes {provider.name}'s "
                                       "servers (see its documentation)."))
    elif _includes(record, include, lookup):
        lines.append(Line("SPF", PASS, f"{record} (includes {include})."))
    else:
        fixed = record.replace(" ~all", f" include:{include} ~all").replace(
            " -all", f" include:{include} -all")
        if fixed == record:
            fixed = f"{record} include:{include}"
        lines.append(Line("SPF", FAIL, f"The SPF record does not include {include}, so mail "
                                       f"from {provider.name} fails SPF.",
                          f"{domain} TXT \"{fixed}\""))
    return lines


# -- DKIM --------------------------------------------------------------------------

def _dkim(domain: str, provider: Provider, lookup: Lookup) -> list[Line]:
    if not provider.dkim_selectors:
        return [Line("DKIM", WARN, f"No DKIM selectors to check for {provider.name}: set "
                                   "DKIM_SELECTORS to the selectors your provider gave you "
                                   "(e.g. DKIM_SELECTORS=pm,k1).")]
    lines = []
    for selector in provider.dkim_selectors:
        name = f"{selector}._domainkey.{domain}"
        cnames = lookup(name, "CNAME")
        if cnames:
            target = cnames[0].rstrip(".")
            if provider.sendgrid and not target.endswith("sendgrid.net"):
                lines.append(Line(f"DKIM {selector}", FAIL,
                                  f"{name} points at {target}, not at SendGrid.",
                                  f"{name} CNAME {selector}.domainkey.u<id>.wl<id>.sendgrid.net "
                                  "(the value SendGrid's Sender Authentication page shows)"))
            else:
                lines.append(Line(f"DKIM {selector}", PASS, f"{name} CNAME {target}."))
            continue
        keys = [t for t in lookup(name, "TXT") if "p=" in t.replace(" ", "")]
        if keys and any(_dkim_key(t) for t in keys):
            lines.append(Line(f"DKIM {selector}", PASS, f"{name} has a DKIM key."))
        elif keys:
            lines.append(Line(f"DKIM {selector}", FAIL, f"{name} has an empty (revoked) key.",
                              f"{name} TXT \"v=DKIM1; k=rsa; p=<the key your provider gives>\""))
        else:
            record = (f"{name} CNAME {selector}.domainkey.u<id>.wl<id>.sendgrid.net (from "
                      "SendGrid's Sender Authentication page)" if provider.sendgrid else
                      f"{name} TXT \"v=DKIM1; k=rsa; p=<the key your provider gives>\"")
            lines.append(Line(f"DKIM {selector}", FAIL,
                              f"No DKIM record at {name}: mail cannot be signed for {domain}.",
                              record))
    return lines


def _dkim_key(txt: str) -> str:
    for part in txt.replace(" ", "").split(";"):
        if part.startswith("p="):
            return part[2:]
    return ""


# -- DMARC -------------------------------------------------------------------------

def _tags(record: str) -> dict[str, str]:
    out = {}
    for part in record.split(";"):
        key, _, value = part.strip().partition("=")
        if key:
            out[key.strip().lower()] = value.strip()
    return out


def _dmarc(domain: str, provider: Provider, lookup: Lookup) -> list[Line]:
    wanted = f"_dmarc.{domain} TXT \"v=DMARC1; p=none; rua=mailto:dmarc@{domain}\""
    names = [f"_dmarc.{domain}"]
    organisational = ".".join(domain.split(".")[-2:])
    if organisational != domain:
        names.append(f"_dmarc.{organisational}")  # a subdomain falls back to its parent's
    for name in names:
        records = [t for t in lookup(name, "TXT") if t.upper().startswith("V=DMARC1")]
        if records:
            break
    else:
        return [Line("DMARC", FAIL, f"No DMARC record for {domain}: Gmail, Yahoo and Outlook "
                                    "require one of bulk senders.", wanted)]
    if len(records) > 1:
        return [Line("DMARC", FAIL, f"{len(records)} DMARC records at {name}: receivers "
                                    "ignore them all. Keep one.", wanted)]
    tags = _tags(records[0])
    policy = tags.get("p", "").lower()
    if name != names[0]:
        policy = tags.get("sp", policy).lower()
    lines = []
    if policy not in ("none", "quarantine", "reject"):
        lines.append(Line("DMARC", FAIL, f"The DMARC record at {name} has no valid policy "
                                         f"(p={policy or 'missing'}).", wanted))
    elif policy == "none":
        lines.append(Line("DMARC", WARN, f"Policy p=none at {name}: enough for the bulk-sender "
                                         "rules, but it protects nothing. Once the reports "
                                         "show only your own mail, move to p=quarantine.",
                          f"{name} TXT \"{records[0].replace('p=none', 'p=quarantine')}\""))
    else:
        lines.append(Line("DMARC", PASS, f"Policy p={policy} at {name}."))
    # Alignment: the From domain must match the DKIM signing domain (d=) or the SPF
    # domain (the bounce address). Providers sign with d=<your domain> once its DKIM
    # records are set, and bounce through a subdomain (em123.<domain>): that aligns
    # in relaxed mode only, so strict SPF alignment cannot pass.
    if tags.get("adkim", "r").lower() == "s" and tags.get("aspf", "r").lower() == "s":
        lines.append(Line("DMARC alignment", WARN,
                          "adkim=s and aspf=s: strict alignment. SPF then fails alignment (the "
                          "provider's bounce address is a subdomain) and only DKIM signed with "
                          f"d={domain} exactly passes. Drop aspf=s unless you need it.",
                          f"{name} TXT \"{records[0].replace('aspf=s', 'aspf=r')}\""))
    else:
        lines.append(Line("DMARC alignment", PASS,
                          f"From {domain} aligns with DKIM signed for {domain} "
                          f"(adkim={tags.get('adkim', 'r')}, aspf={tags.get('aspf', 'r')})."))
    return lines


# -- MX and SendGrid's own names ----------------------------------------------------

def _mx(domain: str, provider: Provider, lookup: Lookup) -> list[Line]:
    mx = lookup(domain, "MX")
    if mx:
        return [Line("MX", PASS, f"{domain} receives mail ({', '.join(sorted(mx))}): replies "
                                 "and abuse reports reach you.")]
    if lookup(domain, "A"):
        return [Line("MX", WARN, f"{domain} has no MX record (mail falls back to its A "
                                 "record): some receivers distrust a From domain that cannot "
                                 "take replies.", f"{domain} MX 10 <your mail server>")]
    return [Line("MX", FAIL, f"{domain} has no MX (or A) record: receivers reject mail from "
                             "a domain that cannot receive any.",
                 f"{domain} MX 10 <your mail server>")]


def _sendgrid_names(domain: str, lookup: Lookup, names: Sequence[str]) -> list[Line]:
    """The CNAMEs SendGrid's domain authentication (em…) and link branding (url…, and a
    numeric one) ask for; their names are per account, so the operator lists them."""
    if not names:
        return [Line("SendGrid CNAMEs", WARN,
                     "Set SENDGRID_DNS_NAMES to the host names SendGrid's Sender Authentication "
                     "page lists (e.g. em1234,url5678,5678) to have them checked.")]
    lines = []
    for label in names:
        host = label if label.endswith(domain) else f"{label}.{domain}"
        try:
            cnames = lookup(host, "CNAME")
        except LookupFailed as exc:
            lines.append(Line(f"SendGrid {host}", FAIL, f"DNS did not answer: {exc}."))
            continue
        target = cnames[0].rstrip(".") if cnames else ""
        if target == "sendgrid.net" or target.endswith(".sendgrid.net"):
            lines.append(Line(f"SendGrid {host}", PASS, f"{host} CNAME {target}."))
        else:
            what = f"points at {target}" if target else "is missing"
            lines.append(Line(f"SendGrid {host}", FAIL,
                              f"{host} {what}: SendGrid cannot verify the domain or brand links.",
                              f"{host} CNAME <the sendgrid.net value SendGrid shows for it>"))
    return lines
