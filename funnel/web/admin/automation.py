"""The admin's pages for sequences and rules (issue 25): each sequence's steps,
who is at which step and the drop-off; each rule's firings."""

from __future__ import annotations

from flask import Blueprint, abort, render_template

from funnel import runtime
from funnel.automation import report
from funnel.core.automations import RulesFileError, load_rules
from funnel.core.sequences import SEND_PREFIX, load_sequences
from funnel.web.admin.auth import admin_only

bp = Blueprint("automation", __name__, url_prefix="/admin")
admin_only(bp)


def _emails_dir() -> str:
    return runtime.rt().settings.emails_dir


@bp.get("/sequences")
def sequences():
    seqs = load_sequences(_emails_dir())
    s = runtime.session()
    rows = [(d, report.sequence_figures(s, d)[0]) for d in seqs.defs]
    try:
        rules, rules_error = load_rules(_emails_dir()), None
    except RulesFileError as exc:
        rules, rules_error = (), str(exc)
    counts = report.rule_counts(s)
    return render_template("admin/sequences.html", rows=rows, broken=seqs.broken,
                           rules=rules, rules_error=rules_error, counts=counts,
                           send_prefix=SEND_PREFIX)


@bp.get("/sequences/<name>")
def sequence(name: str):
    d = load_sequences(_emails_dir()).get(name)
    if d is None:
        abort(404)
    states, steps = report.sequence_figures(runtime.session(), d)
    return render_template("admin/sequence.html", d=d, states=states, steps=steps)


@bp.get("/rules/<path:name>")
def rule(name: str):
    try:
        found = next((r for r in load_rules(_emails_dir()) if r.name == name), None)
    except RulesFileError:
        found = None
    s = runtime.session()
    count, last = report.rule_counts(s).get(name, (0, None))
    if found is None and not count:
        abort(404)
    return render_template("admin/rule.html", name=name, rule=found, count=count,
                           firings=report.last_firings(s, name))
