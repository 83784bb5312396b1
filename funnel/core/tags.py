"""The rule for a tag's name, shared by every way a tag comes in (pure: no database)."""

from __future__ import annotations

import re

TAG_MAX = 64
# Lowercase letters, digits and single hyphens: safe in a URL, a CSV cell, YAML and
# a Jinja string (`{% if "race" in tags %}`), and never mistaken for another tag
# by case ("Race" and "race" are one tag: input is lowered first).
_TAG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def normal_tag(raw: object) -> str:
    """The tag as stored, or ValueError saying what is wrong with it."""
    tag = str(raw if raw is not None else "").strip().lower()
    if not tag:
        raise ValueError("a tag cannot be empty")
    if len(tag) > TAG_MAX:
        raise ValueError(f"a tag is at most {TAG_MAX} characters ('{tag[:20]}…' is longer)")
    if not _TAG.match(tag):
        raise ValueError(f"tag '{tag}' can hold only letters a-z, digits and single hyphens "
                         "between them (e.g. 'race-week')")
    return tag
