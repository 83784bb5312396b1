"""``emails check`` for issue 25's files: each sequence's ``_sequence.yml`` and
``emails/automations.yml`` (unknown sequences and emails, tag typos, loops)."""

from __future__ import annotations

from pathlib import Path

from funnel.core.automations import FILE, RulesFileError, check_rules, load_rules
from funnel.core.sequence import EmailFileError, read_email_file
from funnel.core.sequences import SEND_PREFIX, load_sequences, send_emails


def problems(root: Path) -> list[tuple[Path, int, str, str]]:
    """(path, line, level, message) for every problem found."""
    out: list[tuple[Path, int, str, str]] = []
    try:
        seqs = load_sequences(root)
    except EmailFileError as exc:  # a slug shared between sequences
        return [(exc.path, exc.line, "error", exc.message)]
    for name, error in seqs.broken.items():
        if not name.startswith(SEND_PREFIX):  # the email itself is checked with the others
            out.append((root / "sequences" / name / "_sequence.yml", 1, "error",
                        f"sequence '{name}' cannot be used: {error}"))
    names = {d.name for d in seqs.defs if not d.name.startswith(SEND_PREFIX)}
    names |= {n for n in seqs.broken if not n.startswith(SEND_PREFIX)}
    for d in seqs.defs:
        if d.start.kind == "finished" and d.start.value not in names:
            out.append((d.folder / "_sequence.yml", 1, "error", f"start: no sequence "
                        f"'{d.start.value}' to finish"))
        for stop in d.stops:
            if stop.sequence and stop.sequence not in names:
                out.append((d.folder / "_sequence.yml", 1, "error",
                            f"stop: no sequence '{stop.sequence}'"))
    emails: set[str] = set()
    for path in send_emails(root):
        try:
            emails.add(read_email_file(path).slug)
        except (EmailFileError, UnicodeDecodeError):
            continue
    tags = {d.start.value for d in seqs.defs if d.start.kind == "tag" and d.start.value}
    tags |= {s.tag for d in seqs.defs for s in d.stops if s.tag}
    path = root / FILE
    try:
        rules = load_rules(root)
    except RulesFileError as exc:
        return [*out, (path, exc.line, "error", exc.message)]
    for p in check_rules(rules, sequences=names, emails=emails, known_tags=tags):
        out.append((path, p.line, p.level, p.message))
    return out
