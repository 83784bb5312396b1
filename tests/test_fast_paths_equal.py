"""Every fast path gives what its plain path gives, for any input, and has a
setting that turns it off.

- The shared composition (``SharedBodies.compose``: a recipient's email built from
  the shared body without rendering them) against their full rendering; and
  ``split`` (their substitutions read back out of their rendering) against the
  rendering it must reproduce. Values come from hypothesis: any text as a name or
  an address, and links with any characters, once the template has been learnt and
  verified (which is when a shortcut could go wrong unnoticed). ``FAST_COMPOSE=0``
  renders every recipient.
- The address check: ``FAST_ADDRESS_CHECK=0`` sends every address to
  email_validator; tests/test_inputs_fast_paths.py compares both paths.
- The page layer: ``PAGE_CACHE_SIZE=0`` (tests/test_fast_pages.py).
- The sign-up form checked without building it: ``FAST_SIGNUP=0`` builds it for every
  sign-up; its layer before Flask: tests/test_fast_signup.py.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from funnel.config import Settings, defaults
from funnel.core import inputs
from funnel.core.rendering import UserText
from funnel.core.sequence import read_email_file
from funnel.mail.compose import PERSONAL_VARIABLES, Composer
from funnel.mail.shared_body import apply_substitutions
from funnel.models import Subscriber
from tests.drip import make_emails_dir

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
# The name and the links printed more than once, in Markdown text and in links,
# in the subject and the preheader: every place a value can be escaped.
BODY = ("Hi {{ first_name }}, **well done** {{ first_name }} ({{ email }}).\n\n"
        "[Your plan]({{ my_plan_url }}) · [leave]({{ unsubscribe_url }}), "
        "[plan again]({{ my_plan_url }})\n")


def _composer(root, fast: bool = True):
    emails = make_emails_dir(root / "emails")
    path = emails / "sequence" / "09-test.md"
    path.write_text(f"---\nslug: test\nsubject: \"Hi {{{{ first_name }}}}\"\n"
                    f"preheader: \"For {{{{ first_name }}}}\"\ndelay: 1 day\n---\n{BODY}")
    config = {**defaults("/nonexistent"), "SECRET_KEY": "s", "FUNNEL_BASE_URL": "https://x.example",
              "EMAILS_DIR": str(emails), "FAST_COMPOSE": fast}
    return Composer(Settings.from_config(config), lambda: NOW), read_email_file(path)


@pytest.fixture(scope="module")
def learnt(tmp_path_factory):
    """A composer whose shared template is learnt and verified by a plain recipient."""
    composer, source = _composer(tmp_path_factory.mktemp("fast"))
    sub = Subscriber(public_id="p-plain", email="plain@example.com", first_name="Sam")
    variables = composer.variables(sub, "d-plain")
    assert composer.shared.compose(source, variables, PERSONAL_VARIABLES) is not None
    fast = [t.fast for t in composer.shared._cache.values() if t is not None and t.fast]
    assert fast and all(f.verified and not f.broken for f in fast)
    return composer, source, variables


def _check(composer, source, variables) -> None:
    try:
        full = composer.renderer.render(source, variables)
    except Exception:  # noqa: BLE001  (the plain path refuses it: nothing to compare)
        return
    fast = composer.shared.compose(source, variables, PERSONAL_VARIABLES)
    if fast is not None:
        email, shared, subs = fast
        assert email == full
        assert apply_substitutions(shared.html, subs) == full.html
        assert apply_substitutions(shared.text, subs) == full.text
    split = composer.shared.split(source, variables, PERSONAL_VARIABLES, full)
    if split is not None:
        shared, subs = split
        assert apply_substitutions(shared.html, subs) == full.html
        assert apply_substitutions(shared.text, subs) == full.text


link_tails = st.text(alphabet=st.sampled_from("aZ9-._~:/?&=#%<>\"' "), max_size=12)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(max_size=30), address=st.text(max_size=20), tail=link_tails)
# A character the learnt alphabet never saw (a control character Markdown rewrites):
# compose must hand it to the full rendering.
@example(name="Sam\x00", address="a@b.c", tail="")
@example(name="Sam\r", address="a@b.c", tail="")
# A link with "&": HTML prints it as &amp;, text as &, so the shared tag of its
# occurrences cannot serve both; split must refuse rather than send one of them wrong.
@example(name="Sam", address="a@b.c", tail="?a&b")
def test_composed_and_split_emails_are_the_full_rendering(learnt, name, address, tail):
    composer, source, plain = learnt
    variables = {**plain, "first_name": UserText(name) if name.strip() else "there",
                 "email": UserText(address),
                 "unsubscribe_url": plain["unsubscribe_url"] + tail,
                 "my_plan_url": plain["my_plan_url"] + tail[::-1]}
    _check(composer, source, variables)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(prefix=st.text(max_size=8), suffix=st.text(max_size=8))
@example(prefix="# ", suffix="")
@example(prefix="1. ", suffix="")
def test_names_that_change_the_markdown_are_still_exact(learnt, prefix, suffix):
    # A name that starts a heading or a list changes the HTML's shape but not always
    # the text's: the shared body must then be refused, never half-applied.
    composer, source, plain = learnt
    name = f"{prefix}Sam{suffix}"
    _check(composer, source, {**plain, "first_name": UserText(name)})


def test_fast_compose_off_renders_every_recipient(tmp_path):
    composer, source = _composer(tmp_path, fast=False)
    calls = []
    render = composer.renderer.render

    def counting(*args, **kwargs):
        calls.append(1)
        return render(*args, **kwargs)

    composer.renderer.render = counting  # type: ignore[method-assign]
    subs = [Subscriber(public_id=f"p{i}", email=f"r{i}@example.com", first_name="Sam")
            for i in range(5)]
    out = composer.messages(source, [(s, f"k{i}", f"d{i}") for i, s in enumerate(subs)], now=NOW)
    on, on_source = _composer(tmp_path / "on")
    same = on.messages(on_source, [(s, f"k{i}", f"d{i}") for i, s in enumerate(subs)], now=NOW)
    # Every recipient rendered in full (the split's one shared rendering besides),
    # and the very same emails as with the shortcut.
    assert len(calls) >= len(subs)
    assert [(m.subject, m.html, m.text) for m in out] == [(m.subject, m.html, m.text) for m in same]
    assert all(m.shared is not None for m in out)  # still batched: split still works


def test_fast_address_check_off_asks_email_validator_every_time(app_config, monkeypatch):
    from funnel import create_app

    seen = []
    validated = inputs._validated
    monkeypatch.setattr(inputs, "_validated", lambda raw: seen.append(raw) or validated(raw))

    def start(config) -> None:
        app = create_app(config)
        app.extensions["funnel_visits"].close()
        app.extensions["funnel"].engine.dispose()

    try:
        start({**app_config, "FAST_ADDRESS_CHECK": False})
        assert inputs.normalise_email("Runner@Example.com") == "runner@example.com"
        assert seen == ["Runner@Example.com"]
        start(app_config)
        assert inputs.normalise_email("Runner@Example.com") == "runner@example.com"
        assert seen == ["Runner@Example.com"]  # the fast path answered
    finally:
        inputs.use_fast_address_check(True)


# The page layer's own property (any request, the same answer as Flask) is in
# tests/test_fast_pages.py.


# The sign-up form checked without building it (funnel/web/form_check.py): any form
# data at all, the same verdict and data as the WTForms form. Its layer before
# Flask has its own property in tests/test_fast_signup.py.
_FORM_VALUE = st.one_of(
    st.text(max_size=90),
    st.sampled_from(["", " ", "\t", "a@b.co", "x" * 255, "x" * 80, "x" * 81, "Sam\x00",
                     "Ann\u202e", "  Sam ", "Europe/Paris", "article"]))
_FORM_DATA = st.lists(st.tuples(
    st.sampled_from(["email", "first_name", "website", "tz", "referrer", "via", "utm_source",
                     "utm_medium", "utm_campaign", "utm_term", "utm_content", "other"]),
    _FORM_VALUE), max_size=14)


@pytest.fixture(scope="module")
def signup_form_app(tmp_path_factory):
    from funnel import create_app

    path = tmp_path_factory.mktemp("form")
    app = create_app({"SECRET_KEY": "s", "DATABASE_URL": f"sqlite:///{path}/f.db",
                      "OUTBOX_DIR": str(path / "outbox"), "FUNNEL_BASE_URL": "http://x.example"})
    yield app
    app.extensions["funnel_visits"].close()
    app.extensions["funnel"].engine.dispose()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pairs=_FORM_DATA)
@example(pairs=[("email", "a@b.co")])
@example(pairs=[("email", " ")])
@example(pairs=[("email", "a@b.co"), ("first_name", "x" * 81)])
@example(pairs=[("email", "a@b.co"), ("first_name", "Sam\x00")])
@example(pairs=[("email", "a@b.co"), ("first_name", " ")])
@example(pairs=[("email", "a@b.co"), ("utm_source", "x" * 101)])
@example(pairs=[("email", "x" * 255)])
@example(pairs=[])
def test_the_sign_up_form_checked_without_the_form_agrees_with_it(signup_form_app, pairs):
    from werkzeug.datastructures import ImmutableMultiDict

    from funnel.web.forms import SignupForm
    from funnel.web.public.signup import signup_check

    formdata = ImmutableMultiDict(pairs)
    check = signup_check(signup_form_app)
    assert check is not None and check.fields is not None
    with signup_form_app.test_request_context("/free-plan", method="POST"):
        form = SignupForm(formdata=formdata)
        valid = form.validate()
        fast = check.check(formdata)
    assert (fast is not None) == valid
    if valid:
        assert fast == form.data


def test_fast_signup_off_builds_the_form_every_time(app_config):
    from funnel import create_app
    from funnel.web.public.signup import signup_check

    app = create_app({**app_config, "FAST_SIGNUP": False})
    try:
        assert signup_check(app) is None
    finally:
        app.extensions["funnel_visits"].close()
        app.extensions["funnel"].engine.dispose()


def test_a_form_the_check_does_not_know_is_always_built(signup_form_app):
    from wtforms import BooleanField, StringField
    from wtforms.validators import Email

    from funnel.web.form_check import FormCheck
    from funnel.web.forms import SignupForm

    class WithBox(SignupForm):
        agree = BooleanField()

    class WithEmail(SignupForm):
        extra = StringField(validators=[Email()])

    class WithFilter(SignupForm):
        extra = StringField(filters=[lambda v: v.strip() if v else v])

    with signup_form_app.test_request_context("/free-plan", method="POST"):
        for kind in (WithBox, WithEmail, WithFilter):
            assert FormCheck(kind(formdata=None)).fields is None
