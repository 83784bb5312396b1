"""The email files a marketer edits: rendering, headers, the free plan's content,
`emails check`, `emails preview` and the admin preview pages."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from funnel import create_app
from funnel.accounts.passwords import hash_password
from funnel.config import PROJECT_ROOT, Settings, defaults
from funnel.core.sequence import load_sequence, read_email_file
from funnel.mail.check import email_files, sample_subscriber
from funnel.mail.compose import Composer
from funnel.models import AdminUser, Subscriber
from funnel.runtime import make_worker
from tests.conftest import TEST_SECRET, csrf_token, sign_up_and_confirm
from tests.external import SEED_ARTICLE, require

EMAILS = PROJECT_ROOT / "emails"
ALL_SLUGS = [read_email_file(p).slug for p in email_files(EMAILS)]
SEQUENCE_SLUGS = [s.slug for s in load_sequence(EMAILS)]
TAG = re.compile(r"</?[a-zA-Z][^>]*>")


def composer(base_url: str = "http://localhost", emails_dir: Path = EMAILS) -> Composer:
    config = {**defaults("/nonexistent"), "SECRET_KEY": TEST_SECRET,
              "FUNNEL_BASE_URL": base_url, "EMAILS_DIR": str(emails_dir)}
    return Composer(Settings.from_config(config))


def source(slug: str, emails_dir: Path = EMAILS):
    from funnel.mail.check_support import find_source

    src = find_source(emails_dir, slug)
    assert src is not None, slug
    return src


@pytest.fixture
def emails_copy(tmp_path) -> Path:
    """A copy of the real emails/ the test may break."""
    return Path(shutil.copytree(EMAILS, tmp_path / "emails"))


def lint_app(tmp_path: Path, emails_dir: Path):
    """An app for commands that never touch the database."""
    return create_app({
        "TESTING": True, "SECRET_KEY": TEST_SECRET, "FUNNEL_BASE_URL": "http://localhost",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'unused.db'}", "EMAILS_DIR": str(emails_dir),
        "OUTBOX_DIR": str(tmp_path / "outbox"),
    })


def run_cli(tmp_path: Path, emails_dir: Path, *args: str):
    app = lint_app(tmp_path, emails_dir)
    result = app.test_cli_runner().invoke(args=list(args))
    app.extensions["funnel"].engine.dispose()
    return result


def line_of(path: Path, needle: str) -> int:
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError(f"{needle!r} not in {path}")


# -- rendering -------------------------------------------------------------------

@pytest.mark.parametrize("slug", ALL_SLUGS)
def test_every_email_renders_into_the_layout_with_a_text_part(slug):
    c = composer()
    # Tokens carry a timestamp: build the links once and compare against those.
    variables = c.variables(sample_subscriber(), "d-1")
    r = c.renderer.render(source(slug), variables)
    # HTML: one shared layout, CSS inlined, footer with everything the law asks for.
    assert r.html.lstrip().lower().startswith("<!doctype html>")
    assert '<body style="' in r.html and "<style>" not in r.html
    assert 'name="viewport"' in r.html
    for key in ("unsubscribe_url", "preferences_url", "postal_address"):
        assert str(variables[key]).replace("&", "&amp;") in r.html
    assert r.preheader and r.preheader in r.html
    # Text: the same words, links written out, nothing of the HTML left.
    # System mail may reach a stranger who typed the address: it greets nobody by name.
    system = ("confirm", "already-subscribed", "fresh-link")
    assert ("Hi there," if slug in system else "Hi Alex,") in r.text
    assert not TAG.search(r.text), TAG.search(r.text)
    assert "**" not in r.text and "](" not in r.text
    assert variables["unsubscribe_url"] in r.text and variables["postal_address"] in r.text
    links = re.findall(r'<a href="([^"]+)"', r.html)
    for href in links:
        if href.startswith("http://localhost/") and "/view/" not in href:
            assert href in r.text, f"link {href} missing from the text part"


def test_first_name_defaults_and_subscriber_data_is_escaped():
    c = composer()
    src = source("hip-mobility")
    nameless = Subscriber(first_name="", email="n@example.com", public_id="p1")
    assert "Hi there," in c.render(src, nameless, "d").text
    evil = Subscriber(first_name="[win](https://evil.example) <script>x</script>",
                      email="e@example.com", public_id="p2")
    r = c.render(src, evil, "d")
    assert "evil.example" not in re.findall(r'href="([^"]+)"', r.html).__str__()
    assert "<script>" not in r.html
    assert "[win](https://evil.example) <script>x</script>" in r.text


def test_templates_run_sandboxed_with_strict_variables(tmp_path, emails_copy):
    from jinja2 import UndefinedError
    from jinja2.exceptions import SecurityError

    path = emails_copy / "sequences" / "plan" / "02-hip-mobility.md"
    text = path.read_text()
    c = composer(emails_dir=emails_copy)
    path.write_text(text.replace("{{ first_name }}", "{{ frist_name }}"))
    with pytest.raises(UndefinedError):
        c.render(read_email_file(path), sample_subscriber(), "d")
    path.write_text(text.replace("{{ first_name }}", "{{ first_name.__class__.__mro__ }}"))
    with pytest.raises(SecurityError):
        c.render(read_email_file(path), sample_subscriber(), "d")


# -- what a subscriber receives ----------------------------------------------------

def test_subscriber_email_headers_footer_and_links(app, client, outbox, clock, db):
    sign_up_and_confirm(client, outbox, "reader@example.com", "Robin")
    make_worker(app.extensions["funnel"]).run_pass(clock.now)
    [msg] = [m for m in outbox.to("reader@example.com")
             if m["Subject"] == "Part 1: the lateral hip and low back stretch"]
    unsub = msg["List-Unsubscribe"]
    assert re.fullmatch(r"<http://localhost/unsubscribe/[A-Za-z0-9._\-]+>", unsub)
    assert "reader" not in unsub and "example.com" not in unsub  # opaque token
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "<free-plan.runstronger.example>" in msg["List-Id"]
    assert re.fullmatch(r"<[^@\s]+@runstronger\.example>", msg["Message-ID"])
    assert msg["Date"].datetime == clock.now
    text = outbox.text(msg)
    assert "Hi Robin," in text
    assert "You are getting this because you signed up" in text
    assert "1 Example Street" in text and "/preferences/" in text
    assert unsub[1:-1] in text
    # The view-in-browser page shows the same email.
    view = outbox.link(msg, "view")
    page = client.get(view)
    assert page.status_code == 200
    assert "The lateral hip and low back stretch</h1>" in page.get_data(as_text=True)
    # A GET on the unsubscribe link only shows a button; the one-click POST acts at once.
    path = unsub[1:-1].removeprefix("http://localhost")
    shown = client.get(path)
    assert shown.status_code == 200 and "<button" in shown.get_data(as_text=True)
    db.rollback()
    sub = db.scalar(select(Subscriber).where(Subscriber.email == "reader@example.com"))
    assert sub.status == "confirmed"
    done = client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "Location" not in done.headers
    db.rollback()
    db.refresh(sub)
    assert sub.status == "unsubscribed"


def test_list_unsubscribe_is_https_when_the_site_is():
    c = composer("https://runstronger.example")
    msg = c.message(source("lateral-hip-stretch"), sample_subscriber(), key="k1",
                    now=datetime(2026, 12, 1, tzinfo=UTC), delivery_id="d1")
    assert msg.headers["List-Unsubscribe"].startswith("<https://runstronger.example/unsubscribe/")
    assert msg.headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "https://runstronger.example/view/" in msg.text


# -- the free plan itself -------------------------------------------------------------

def test_the_sequence_is_a_plan_of_seven_or_more_emails_over_four_weeks_or_more():
    seq = load_sequence(EMAILS)
    assert len(seq) >= 7
    assert SEQUENCE_SLUGS[:3] == ["lateral-hip-stretch", "hip-mobility", "glute-strength"]
    first = seq.steps[0]
    assert first.delay == timedelta(0) and first.window == (0, 24)
    assert sum((s.delay for s in seq), timedelta()) >= timedelta(weeks=4)
    assert all(s.delay >= timedelta(days=2) for s in seq.steps[1:])  # never a pile-up


@pytest.mark.parametrize("slug", SEQUENCE_SLUGS[1:])
def test_each_plan_email_has_exercises_doses_safety_and_a_way_back(slug):
    r = composer().render(source(slug), sample_subscriber(), "d")
    text = r.text
    assert "Safety:" in text
    doses = re.findall(r"\b\d+ (?:sets?|holds?|rounds?|swings|reps|runs|strides|marches)\b"
                       r"|\b\d+ to \d+ (?:strides|minutes|seconds)", text)
    assert len(doses) >= 3, doses
    assert re.search(r"\(http://localhost/[^)]*\)", text), "no link back to the site"
    assert re.search(r"^\d\. ", text, re.MULTILINE), "no numbered exercises"


def _words(t: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", t.lower())


def _runs(w: list[str], n: int = 7) -> set[tuple[str, ...]]:
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)}


def _copied(text: str) -> set[tuple[str, ...]]:
    return _runs(_words(text)) & _runs(_words(require(SEED_ARTICLE).read_text()))


STEP_BY_STEP = ("hands and knees", "breath out", "30 to 40 seconds", "5 reps",
                "2 rounds on each side", "start with the right", "should feel",
                "should not feel", "tingling", "pinch")


def test_email_one_is_the_stretch_article_in_our_own_words():
    text = composer().render(source("lateral-hip-stretch"), sample_subscriber(), "d").text
    for point in ("flexion", "adduction", "rotation", "glute", "biceps femoris",
                  "quadratus lumborum", "a few times a day", "two to three weeks",
                  "why rotate away", "too much", "under your body and across",
                  *STEP_BY_STEP):
        assert point in text.lower(), point
    copied = _copied(text)
    assert not copied, f"copied from the article: {copied}"


def test_the_article_page_is_in_our_own_words_and_step_by_step(client):
    html = client.get("/").get_data(as_text=True)
    # The article's own words: its title is the seed's title, kept on purpose.
    body = re.sub(r"<h1>.*?</h1>", " ", html[html.index("<article>"):], flags=re.DOTALL)
    text = " ".join(TAG.sub(" ", body).replace("&amp;", "&").split())
    for point in ("flexion", "adduction", "biceps femoris", "quadratus lumborum",
                  "a few times a day", "two to three weeks", "under your body and across",
                  "hands and knees", "breath out", "30 to 40 seconds", "two rounds on each side",
                  "start with the right", "should feel", "should not feel", "tingling"):
        assert point in text.lower(), point
    assert len(re.findall(r'<img src="/media/stretch-\d-[a-z]+\.[0-9a-f]{12}\.svg"', html)) == 4
    copied = _copied(text)
    assert not copied, f"copied from the article: {copied}"


def test_seed_comparison_catches_a_copied_sentence():
    """Negative control: one sentence of the seed, pasted in, is caught."""
    sentence = "Give it a go a few times daily for the next 2-3 weeks and see how you get on"
    assert _copied("Our own words. " + sentence)


def test_subjects_are_numbered_part_by_part():
    subjects = [s.subject for s in load_sequence(EMAILS)]
    assert [s.split(":")[0] for s in subjects] == [f"Part {i}" for i in
                                                    range(1, len(subjects) + 1)]


# -- emails check -----------------------------------------------------------------------

def test_check_passes_on_the_real_emails(tmp_path):
    result = run_cli(tmp_path, EMAILS, "emails", "check", "--strict")
    assert result.exit_code == 0, result.output
    assert "error:" not in result.output and "warning:" not in result.output


def test_check_catches_a_typo_d_variable_with_file_and_line(tmp_path, emails_copy):
    path = emails_copy / "sequences" / "plan" / "02-hip-mobility.md"
    path.write_text(path.read_text().replace("Hi {{ first_name }},", "Hi {{ frist_name }},"))
    line = line_of(path, "frist_name")
    result = run_cli(tmp_path, emails_copy, "emails", "check")
    assert result.exit_code == 1
    assert (f"{path}:{line}: error: unknown variable 'frist_name' "
            "(did you mean 'first_name'?)") in result.output


BROKEN = {
    "missing subject": (lambda t: re.sub(r"^subject:.*\n", "", t, flags=re.MULTILINE),
                        "error: front matter needs 'subject'"),
    "link to #": (lambda t: t + "\n[More](#)\n", "error: link to '#' points nowhere"),
    "relative link": (lambda t: t + "\n[More](/free-plan)\n",
                      "error: link to '/free-plan' points nowhere in an email"),
    "no such page": (lambda t: t + "\n[More]({{ site_url }}no-such-page)\n",
                     "error: link to '/no-such-page' on our site: there is no such page"),
    "image without alt": (lambda t: t + "\n![](https://cdn.example/x.png)\n",
                          "error: image without alt text"),
    "long subject": (lambda t: re.sub(r"^subject:.*$", "subject: " + "x" * 101, t, flags=re.MULTILINE),
                     "error: the subject is 101 characters"),
    "unclosed tag": (lambda t: t.replace("{{ first_name }}", "{{ first_name }"),
                     "error: template syntax"),
    "bad delay": (lambda t: re.sub(r"^delay:.*$", "delay: next week", t, flags=re.MULTILINE),
                  "error: cannot read delay"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_check_catches_broken_emails(case, tmp_path, emails_copy):
    edit, expected = BROKEN[case]
    path = emails_copy / "sequences" / "plan" / "03-glute-strength.md"
    path.write_text(edit(path.read_text()))
    result = run_cli(tmp_path, emails_copy, "emails", "check")
    assert result.exit_code == 1, result.output
    [hit] = [line for line in result.output.splitlines() if expected in line]
    assert re.match(rf"{re.escape(str(path))}:\d+: error: ", hit)


def test_check_warns_about_long_subject_and_missing_preheader(tmp_path, emails_copy):
    path = emails_copy / "sequences" / "plan" / "03-glute-strength.md"
    text = re.sub(r"^subject:.*$", "subject: " + "y" * 70, path.read_text(), flags=re.MULTILINE)
    path.write_text(re.sub(r"^preheader:.*\n", "", text, flags=re.MULTILINE))
    result = run_cli(tmp_path, emails_copy, "emails", "check")
    assert result.exit_code == 0, result.output  # warnings alone don't fail
    assert f"{path}:3: warning: the subject is 70 characters" in result.output
    assert "warning: no preheader" in result.output
    assert run_cli(tmp_path, emails_copy, "emails", "check", "--strict").exit_code == 1


@pytest.mark.parametrize("cut, expected", [
    ('<a href="{{ unsubscribe_url }}">Unsubscribe</a>', "no unsubscribe link"),
    ("<p>{{ postal_address }}</p>", "no postal address"),
])
def test_check_refuses_a_layout_without_unsubscribe_or_address(cut, expected, tmp_path,
                                                               emails_copy):
    layout = emails_copy / "layout" / "base.html"
    assert cut in layout.read_text()
    layout.write_text(layout.read_text().replace(cut, ""))
    result = run_cli(tmp_path, emails_copy, "emails", "check")
    assert result.exit_code == 1
    assert f"{layout}:1: error: the layout has {expected}" in result.output


# -- emails preview -----------------------------------------------------------------------

def test_preview_command_renders_html_and_text(tmp_path):
    html = run_cli(tmp_path, EMAILS, "emails", "preview", "hip-mobility")
    assert html.exit_code == 0, html.output
    assert html.output.lower().startswith("<!doctype html>")
    assert "Hi Alex," in html.output and "Ten minutes of hip mobility</h1>" in html.output
    text = run_cli(tmp_path, EMAILS, "emails", "preview", "hip-mobility", "--text")
    assert text.exit_code == 0
    assert text.output.startswith("Subject: Part 2: ten minutes of hip mobility")
    assert "Hi Alex," in text.output and not TAG.search(text.output)
    missing = run_cli(tmp_path, EMAILS, "emails", "preview", "nope")
    assert missing.exit_code != 0 and "no email with slug 'nope'" in missing.output


# -- admin preview pages --------------------------------------------------------------------

@pytest.fixture
def app_config(app_config, emails_copy):
    # The preview tests edit files; the real emails/ stay untouched.
    return {**app_config, "EMAILS_DIR": str(emails_copy)}


def log_in(client, db, clock) -> None:
    db.add(AdminUser(email="coach@example.com", password_hash=hash_password("long enough pw"),
                     created_at=clock.now))
    db.commit()
    token = csrf_token(client, "/admin/login")
    resp = client.post("/admin/login", data={"email": "coach@example.com",
                                             "password": "long enough pw", "csrf_token": token})
    assert resp.status_code == 302


def test_preview_pages_need_the_admin_login(client, outbox):
    for path in ("/admin/emails/", "/admin/emails/hip-mobility",
                 "/admin/emails/hip-mobility/version.json", "/admin/emails/hip-mobility/html",
                 "/admin/emails/hip-mobility/text"):
        resp = client.get(path)
        assert resp.status_code == 302 and "/admin/login" in resp.headers["Location"], path
    resp = client.post("/admin/emails/hip-mobility/send-test", data={"to": "x@example.com"})
    assert resp.status_code in (302, 400)
    assert len(outbox) == 0


def test_timeline_lists_the_sequence_in_order(client, db, clock):
    log_in(client, db, clock)
    resp = client.get("/admin/emails/")
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    page = resp.get_data(as_text=True)
    seq = load_sequence(EMAILS)
    positions = [page.index(f'href="/admin/emails/{s.slug}"') for s in seq]
    assert positions == sorted(positions)
    assert "Day 1: straight after confirming" in page
    assert "Day 4: 3 days after the previous email" in page
    assert "Every email passes the checks." in page
    assert 'href="/admin/emails/confirm"' in page  # system emails too


def test_preview_shows_desktop_phone_and_text(client, db, clock):
    log_in(client, db, clock)
    resp = client.get("/admin/emails/glute-strength")
    assert resp.status_code == 200 and resp.headers["Cache-Control"] == "no-store"
    page = resp.get_data(as_text=True)
    assert "<h1>Part 3: glute and outer-hip strength, twice a week</h1>" in page
    assert page.count("<iframe") == 2 and 'class="phone"' in page and ".phone{width:375px;max-width:100%}" in page
    assert "srcdoc=\"&lt;!DOCTYPE html&gt;" in page and "Hi Alex," in page
    assert re.search(r'<pre class="text" id="text-part">Glute and outer-hip strength\n=+\n', page)
    html = client.get("/admin/emails/glute-strength/html")
    assert html.status_code == 200 and "Hi Alex," in html.get_data(as_text=True)
    assert client.get("/admin/emails/nope").status_code == 404


def test_preview_follows_file_edits_without_restart(client, db, clock, emails_copy):
    log_in(client, db, clock)
    before = client.get("/admin/emails/hip-mobility/version.json").get_json()["version"]
    assert client.get("/admin/emails/hip-mobility/version.json").get_json()["version"] == before
    path = emails_copy / "sequences" / "plan" / "02-hip-mobility.md"
    path.write_text(path.read_text().replace("How is the stretch going?",
                                             "How are your hips today?"))
    after = client.get("/admin/emails/hip-mobility/version.json").get_json()["version"]
    assert after != before
    page = client.get("/admin/emails/hip-mobility").get_data(as_text=True)
    assert "How are your hips today?" in page and "How is the stretch going?" not in page
    # The layout is part of every email: editing it shows up too.
    layout = emails_copy / "layout" / "base.html"
    layout.write_text(layout.read_text().replace("RUN STRONGER", "RUN STRONGER TODAY"))
    assert client.get("/admin/emails/hip-mobility/version.json").get_json()["version"] != after
    assert "RUN STRONGER TODAY" in client.get("/admin/emails/hip-mobility/html").get_data(
        as_text=True)
    # A typo shows as a check problem on the page instead of breaking it.
    path.write_text(path.read_text().replace("{{ first_name }}", "{{ frist_name }}"))
    page = client.get("/admin/emails/hip-mobility").get_data(as_text=True)
    assert "unknown variable &#39;frist_name&#39;" in page
    assert "This email does not render" in page


def test_send_test_is_queued_then_sent_by_the_worker(client, db, clock, outbox):
    log_in(client, db, clock)
    page = "/admin/emails/staying-strong"
    token = csrf_token(client, page)
    resp = client.post(page + "/send-test", data={"to": "Me@Example.com", "csrf_token": token})
    assert resp.status_code == 303 and resp.headers["Location"].endswith(page)
    assert len(outbox) == 0  # the request only queued it
    shown = client.get(page).get_data(as_text=True)
    assert shown.count("Test queued for me@example.com: it goes out within a minute.") == 1
    assert "To me@example.com" in shown and "<strong>queued</strong>" in shown
    assert make_worker(client.application.extensions["funnel"]).run_pass(clock.now).sent == 1
    [msg] = outbox.messages()
    assert msg["To"] == "me@example.com"
    assert msg["Subject"] == "[TEST] Part 8: staying strong for the rest of the season"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Hi Alex," in outbox.text(msg) and "/view/" in outbox.text(msg)
    assert f"<strong>sent at {clock.now:%H:%M}</strong>" in client.get(page).get_data(as_text=True)
    bad = client.post(page + "/send-test", data={"to": "not an address", "csrf_token": token})
    assert bad.status_code == 303
    assert "Not queued: " in client.get(page).get_data(as_text=True)
    no_csrf = client.post(page + "/send-test", data={"to": "me@example.com"})
    assert no_csrf.status_code == 400
    make_worker(client.application.extensions["funnel"]).run_pass(clock.now)
    assert len(outbox) == 1
