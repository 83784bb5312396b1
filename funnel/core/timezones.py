"""The time zones a person may choose: canonical IANA names grouped by region.

``zoneinfo.available_timezones()`` lists about 600 names, among them "Factory",
"localtime", "posixrules" and old aliases ("US/Pacific", "Asia/Calcutta") that
nobody should have to scroll past. The tz database's own ``zone.tab`` names one
canonical zone per place (what the tz maintainers recommend showing people), so
the menu offers those, plus "UTC". Older names stay *accepted* (a browser may
report one, and existing subscribers may hold one) but are not offered.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from zoneinfo import available_timezones

SYSTEM_ZONE_TAB = Path("/usr/share/zoneinfo/zone.tab")
UTC_NAME = "UTC"


def _zone_tab_text() -> str:
    """zone.tab from the tzdata package (a dependency), else the system's copy."""
    try:
        return (resources.files("tzdata.zoneinfo") / "zone.tab").read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, OSError):
        return SYSTEM_ZONE_TAB.read_text(encoding="utf-8")


@functools.cache
def canonical_zones() -> tuple[str, ...]:
    """The zones offered in menus, sorted; every one loadable by zoneinfo."""
    known = available_timezones()
    names = {UTC_NAME}
    for line in _zone_tab_text().splitlines():
        if not line or line.startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) >= 3 and parts[2] in known:
            names.add(parts[2])
    return tuple(sorted(names))


@functools.cache
def accepted_zones() -> frozenset[str]:
    """Every name zoneinfo can load, minus the ones that are not places."""
    return frozenset(available_timezones()) - {"Factory", "localtime", "posixrules"}


def region(name: str) -> str:
    """"Europe/London" → "Europe"; "UTC" → "UTC"."""
    return name.split("/", 1)[0] if "/" in name else name


def label(name: str) -> str:
    """What a person reads in the menu: "America/Argentina/Buenos_Aires" → "Argentina / Buenos Aires"."""
    rest = name.split("/", 1)[1] if "/" in name else name
    return rest.replace("_", " ").replace("/", " / ")


def grouped(first: str | None = None) -> list[tuple[str, list[tuple[str, str]]]]:
    """(region, [(value, label)]) for an ``<optgroup>`` menu.

    ``first`` (the browser's guess or the current value) leads in a group of its
    own, so the likely answer is the default without scrolling. A current value
    that is an old alias is shown there too, so saving the form keeps it.
    """
    groups: dict[str, list[tuple[str, str]]] = {}
    for name in canonical_zones():
        groups.setdefault(region(name), []).append((name, label(name) if "/" in name else name))
    out: list[tuple[str, list[tuple[str, str]]]] = []
    if first and first in accepted_zones():
        out.append(("Suggested", [(first, first.replace("_", " "))]))
    out += sorted(groups.items(), key=lambda kv: (kv[0] == UTC_NAME, kv[0]))
    return out
