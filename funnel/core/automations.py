"""The coach's rules: ``emails/automations.yml`` (issue 25). Pure: parsing and the
checks that need no database (unknown sequences and emails, tag typos, loops).

    - name: PDF readers
      when: {clicked: ".pdf"}
      then:
        - add_tag: plan-pdf

``when`` is one of ``clicked: <URL or part>``, ``tag_added: X``, ``finished:
<sequence>``, ``source: <form source>``, ``inactive_days: N``; ``then`` is a list of
``add_tag``, ``remove_tag``, ``start``, ``stop``, ``send`` (an email in
``emails/automations/``), ``unsubscribe: <reason>``. ``repeat: true`` lets a rule
fire again for the same person (each new trigger); otherwise once per person.
``only_tagged: X`` narrows a rule to people who have tag X.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from funnel.core.tags import normal_tag

FILE = "automations.yml"
WHEN_KINDS = ("clicked", "tag_added", "finished", "source", "inactive_days")
ACTIONS = ("add_tag", "remove_tag", "start", "stop", "send", "unsubscribe")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.,'()-]{0,99}$")


class RulesFileError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(f"{FILE}:{line}: {message}")
        self.line, self.message = line, message


@dataclass(frozen=True)
class Rule:
    name: str
    when: str          # one of WHEN_KINDS
    value: str         # what it watches: a URL part, tag, sequence, source, or days
    then: tuple[tuple[str, str], ...]  # (action, argument)
    repeat: bool = False
    only_tagged: str | None = None
    line: int = 1

    @property
    def days(self) -> int:
        return int(self.value)

    def describe(self) -> str:
        return f"when {self.when}: {self.value}"


def _line_of(node: Any, default: int) -> int:
    return getattr(node, "__line__", default)


class _Loader(yaml.SafeLoader):
    """Keeps each mapping's line, so an error points at its rule."""


def _construct(loader: _Loader, node: yaml.MappingNode) -> dict:
    value = _LineDict(loader.construct_mapping(node, deep=True))
    value.__line__ = node.start_mark.line + 1
    return value


class _LineDict(dict):
    __line__ = 1


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct)


def parse_rules(text: str) -> tuple[Rule, ...]:
    """Every rule in the file, or RulesFileError naming the first problem and its line."""
    try:
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise RulesFileError((mark.line + 1) if mark else 1, f"not YAML: {exc}") from exc
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise RulesFileError(1, "the file must be a list of rules, each starting with '- name:'")
    rules = [_rule(item, i) for i, item in enumerate(raw)]
    names = [r.name for r in rules]
    for r in rules:
        if names.count(r.name) > 1:
            raise RulesFileError(r.line, f"two rules are named '{r.name}'")
    return tuple(rules)


def _rule(item: Any, index: int) -> Rule:
    if not isinstance(item, dict):
        raise RulesFileError(1, f"rule {index + 1} must be 'key: value' lines")
    line = _line_of(item, 1)
    unknown = set(item) - {"name", "when", "then", "repeat", "only_tagged"}
    if unknown:
        raise RulesFileError(line, f"unknown key '{sorted(unknown)[0]}' (known: name, when, "
                             "then, repeat, only_tagged)")
    name = str(item.get("name") or "").strip()
    if not _NAME.match(name):
        raise RulesFileError(line, "each rule needs a name: letters, digits, spaces and "
                             "simple punctuation, up to 100 characters")
    when = item.get("when")
    if not isinstance(when, dict) or len(when) != 1:
        raise RulesFileError(line, f"rule '{name}': when must be one of "
                             + ", ".join(f"'{k}: …'" for k in WHEN_KINDS))
    kind, value = next(iter(when.items()))
    if kind not in WHEN_KINDS:
        raise RulesFileError(line, f"rule '{name}': unknown when '{kind}' (use one of "
                             f"{', '.join(WHEN_KINDS)})")
    value = _when_value(name, line, kind, value)
    then = item.get("then")
    if not isinstance(then, list) or not then:
        raise RulesFileError(line, f"rule '{name}': then must be a list of actions")
    actions = tuple(_action(name, _line_of(a, line), a) for a in then)
    repeat = item.get("repeat", False)
    if not isinstance(repeat, bool):
        raise RulesFileError(line, f"rule '{name}': repeat is true or false")
    only = item.get("only_tagged")
    try:
        only = normal_tag(only) if only is not None else None
    except ValueError as exc:
        raise RulesFileError(line, f"rule '{name}': only_tagged: {exc}") from exc
    return Rule(name, kind, value, actions, repeat, only, line)


def _when_value(name: str, line: int, kind: str, value: Any) -> str:
    text = str(value if value is not None else "").strip()
    if not text:
        raise RulesFileError(line, f"rule '{name}': when {kind} needs a value")
    if kind == "inactive_days":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 3650:
            raise RulesFileError(line, f"rule '{name}': inactive_days is a whole number of "
                                 "days from 1 to 3650")
        return str(value)
    if kind == "tag_added":
        try:
            return normal_tag(text)
        except ValueError as exc:
            raise RulesFileError(line, f"rule '{name}': {exc}") from exc
    if len(text) > 300:
        raise RulesFileError(line, f"rule '{name}': the {kind} value is too long")
    return text.lower() if kind == "source" else text


def _action(name: str, line: int, raw: Any) -> tuple[str, str]:
    if raw == "unsubscribe":
        return ("unsubscribe", "rule: " + name)
    if not isinstance(raw, dict) or len(raw) != 1:
        raise RulesFileError(line, f"rule '{name}': each action is one of "
                             + ", ".join(f"'{a}: …'" for a in ACTIONS))
    action, value = next(iter(raw.items()))
    if action not in ACTIONS:
        hint = difflib.get_close_matches(str(action), ACTIONS, n=1)
        raise RulesFileError(line, f"rule '{name}': unknown action '{action}'"
                             + (f" (did you mean '{hint[0]}'?)" if hint else ""))
    text = str(value if value is not None else "").strip()
    if action in ("add_tag", "remove_tag"):
        try:
            text = normal_tag(text)
        except ValueError as exc:
            raise RulesFileError(line, f"rule '{name}': {action}: {exc}") from exc
    elif action == "unsubscribe":
        text = text or f"rule: {name}"
        if len(text) > 200:
            raise RulesFileError(line, f"rule '{name}': the unsubscribe reason is too long")
    elif not text:
        raise RulesFileError(line, f"rule '{name}': {action} needs a value")
    return (action, text)


def load_rules(emails_dir: str | Path) -> tuple[Rule, ...]:
    path = Path(emails_dir, FILE)
    if not path.exists():
        return ()
    return parse_rules(path.read_text(encoding="utf-8"))


# -- checks that need only the files ---------------------------------------------------


@dataclass(frozen=True)
class RuleProblem:
    line: int
    level: str  # "error" or "warning"
    message: str


def check_rules(rules: tuple[Rule, ...], *, sequences: set[str], emails: set[str],
                known_tags: set[str]) -> list[RuleProblem]:
    """Unknown sequences and emails (errors), tags that look like typos of known
    ones (warnings with a suggestion), and loops: a rule whose actions set it off
    again, directly or through other rules (errors)."""
    out: list[RuleProblem] = []
    tags_used: dict[str, int] = {}
    for r in rules:
        if r.when == "tag_added":
            tags_used[r.value] = tags_used.get(r.value, 0) + 1
        if r.only_tagged:
            tags_used[r.only_tagged] = tags_used.get(r.only_tagged, 0) + 1
        for action, value in r.then:
            if action in ("add_tag", "remove_tag"):
                tags_used[value] = tags_used.get(value, 0) + 1
    everyone = set(known_tags) | set(tags_used)
    for r in rules:
        if r.when == "finished" and r.value not in sequences:
            out.append(RuleProblem(r.line, "error", f"rule '{r.name}': no sequence "
                                   f"'{r.value}'{_hint(r.value, sequences)}"))
        for action, value in r.then:
            if action in ("start", "stop") and value not in sequences:
                out.append(RuleProblem(r.line, "error", f"rule '{r.name}': {action}: no "
                                       f"sequence '{value}'{_hint(value, sequences)}"))
            if action == "send" and value not in emails:
                out.append(RuleProblem(r.line, "error", f"rule '{r.name}': send: no email "
                                       f"with slug '{value}' in emails/automations/"
                                       f"{_hint(value, emails)}"))
        for tag in _tags_of(r):
            # A tag seen once that is one letter away from another is likely a typo.
            if tags_used.get(tag, 0) + (tag in known_tags) <= 1:
                near = difflib.get_close_matches(tag, sorted(everyone - {tag}), n=1, cutoff=0.8)
                if near:
                    out.append(RuleProblem(r.line, "warning", f"rule '{r.name}': tag '{tag}' "
                                           f"is used nowhere else: did you mean '{near[0]}'?"))
    for cycle in find_loops(rules):
        out.append(RuleProblem(rules_by_name(rules)[cycle[0]].line, "error",
                               "loop: " + " -> ".join([*cycle, cycle[0]])
                               + " (each sets off the next for ever)"))
    return out


def _tags_of(r: Rule) -> list[str]:
    tags = [v for a, v in r.then if a in ("add_tag", "remove_tag")]
    if r.when == "tag_added":
        tags.append(r.value)
    if r.only_tagged:
        tags.append(r.only_tagged)
    return tags


def _hint(value: str, choices: set[str]) -> str:
    near = difflib.get_close_matches(value, sorted(choices), n=1)
    return f" (did you mean '{near[0]}'?)" if near else ""


def rules_by_name(rules: tuple[Rule, ...]) -> dict[str, Rule]:
    return {r.name: r for r in rules}


def _sets_off(a: Rule, b: Rule) -> bool:
    """Whether one of ``a``'s actions is ``b``'s trigger."""
    for action, value in a.then:
        if b.when == "tag_added" and action == "add_tag" and value == b.value:
            return True
        if b.when == "finished" and action == "start" and value == b.value:
            return True
    return False


def find_loops(rules: tuple[Rule, ...]) -> list[list[str]]:
    """Each cycle of rules setting each other off (a rule setting off itself
    included), once each."""
    edges = {r.name: [b.name for b in rules if _sets_off(r, b)] for r in rules}
    found: list[list[str]] = []
    seen: set[frozenset[str]] = set()

    def walk(path: list[str]) -> None:
        for nxt in edges[path[-1]]:
            if nxt == path[0]:
                key = frozenset(path)
                if key not in seen:
                    seen.add(key)
                    found.append(list(path))
            elif nxt not in path and len(path) < 20:
                walk([*path, nxt])

    for r in rules:
        walk([r.name])
    return found
