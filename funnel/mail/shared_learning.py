"""How a shared body is learnt: the template is rendered with probe values drawn from
adversarial alphabets, and the places each value lands are found and verified; a value
with a character the probes never used goes through the full render instead."""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from funnel.core.rendering import RenderedEmail, UserText
from funnel.core.sequence import EmailSource

_PUNCT = "!\"#$%&'()*+,-./:;<>?@[\\]^_`{|}~"


# A subscriber's own text (UserText): Markdown specials are escaped before parsing.
USER_ALPHABET = (string.ascii_letters + string.digits + _PUNCT + " " + "éëøñßÅœ")


USER_ADVERSARIAL = ("O'Brien & <b>x</b> a*b*c _d_ **e** `f` [g](h) \\i &amp; &#65; "
                    "-_x_- 1. # > ~~s~~ |t| {u} (v) +w! Zoë")


# Links and other values we made ourselves: URL-safe characters.
URL_ALPHABET = string.ascii_letters + string.digits + "-._~:/?&"


# What our signed links are made of (base64url tokens, dots, slashes): the part
# of URL_ALPHABET that HTML and plain text print alike.
LINK_ALPHABET = string.ascii_letters + string.digits + "-._~:/"


_LINK_CHARS = frozenset(LINK_ALPHABET)


URL_ADVERSARIAL = "https://a.b/c-_d_-e__f__g-_-_h.-_i_.j/k?l&m~n~~o"


PLAIN_ALPHABET = string.ascii_letters + string.digits + " "


PLAIN_ADVERSARIAL = "there Sam O 12 x"


@dataclass
class _Fast:
    """What ``compose`` needs for one template: per tag, its variable and map."""

    names: tuple[str, ...]
    html_vars: tuple[int, ...]
    text_vars: tuple[int, ...]
    html_maps: tuple[dict[str, str], ...]
    text_maps: tuple[dict[str, str], ...]
    alphabets: tuple[frozenset[str], ...]
    verified: bool = False
    broken: bool = False

    def __post_init__(self) -> None:
        self.html_tables = tuple(str.maketrans(m) for m in self.html_maps)
        self.text_tables = tuple(str.maketrans(m) for m in self.text_maps)


def _occurrences(rendered: str, nonce: str) -> list[tuple[int, str]] | None:
    pattern = re.compile(rf"zq{nonce}s(\d+)q(.*?)zq{nonce}e\1q", re.S)
    found = [(int(m.group(1)), m.group(2)) for m in pattern.finditer(rendered)]
    rest = pattern.sub("", rendered)
    return None if nonce in rest else found


def learn(render: Callable[[EmailSource, Mapping[str, Any]], RenderedEmail], nonce: str,
          source: EmailSource, variables: Mapping[str, Any], names: tuple[str, ...],
          html_vars: tuple[int, ...], text_vars: tuple[int, ...]) -> _Fast | None:
    """Learn each tag's character map from probe renderings (see above)."""
    kinds: list[list[tuple[str, str, type[str]]]] = []
    for name in names:
        value = variables[name]
        if type(value) is UserText:
            kinds.append([(USER_ALPHABET, USER_ADVERSARIAL, UserText)])
        elif type(value) is str:
            kinds.append([(URL_ALPHABET, URL_ADVERSARIAL, str),
                          (PLAIN_ALPHABET, PLAIN_ADVERSARIAL, str)])
        else:
            return None
    choice = [0] * len(names)
    for _attempt in range(3):
        try:
            fast, failed = _probe(render, nonce, source, variables, names, html_vars, text_vars,
                                  [kinds[i][choice[i]] for i in range(len(names))])
        except Exception:  # noqa: BLE001
            return None
        if fast is not None:
            return fast
        # Narrow the alphabet of the variables that misbehaved and try again.
        progressed = False
        for i in failed:
            if choice[i] + 1 < len(kinds[i]):
                choice[i] += 1
                progressed = True
        if not progressed:
            return None
    return None


def _probe(render, nonce, source, variables, names, html_vars, text_vars, kinds):
    def wrap(i: int, inner: str, cls: type) -> str:
        return cls(f"zq{nonce}s{i}q{inner}zq{nonce}e{i}q")

    marked = {**variables}
    adversarial = {**variables}
    for i, name in enumerate(names):
        alphabet, adv, cls = kinds[i]
        marked[name] = wrap(i, "".join(f"zq{nonce}c{j}q{c}" for j, c in enumerate(alphabet)), cls)
        adversarial[name] = wrap(i, adv, cls)
    r_marked = render(source, marked)
    r_adv = render(source, adversarial)
    failed: set[int] = set()
    maps: dict[str, list[dict[str, str]]] = {}
    marker = re.compile(rf"zq{nonce}c\d+q")
    for part, want in (("html", html_vars), ("text", text_vars)):
        occ = _occurrences(getattr(r_marked, part), nonce)
        adv = _occurrences(getattr(r_adv, part), nonce)
        if occ is None or adv is None or [i for i, _ in occ] != list(want) \
                or [i for i, _ in adv] != list(want):
            return None, set()  # the structure depends on the value: never fast
        part_maps = []
        for (i, inner), (_i, adv_out) in zip(occ, adv):
            alphabet = kinds[i][0]
            pieces = marker.split(inner)
            if len(pieces) != len(alphabet) + 1 or pieces[0]:
                failed.add(i)
                part_maps.append({})
                continue
            cmap = dict(zip(alphabet, pieces[1:]))
            if "".join(cmap.get(c, "\0") for c in kinds[i][1]) != adv_out:
                failed.add(i)
            part_maps.append(cmap)
        maps[part] = part_maps
    if failed:
        return None, failed
    return _Fast(names, tuple(html_vars), tuple(text_vars), tuple(maps["html"]),
                 tuple(maps["text"]), tuple(frozenset(k[0]) for k in kinds)), set()
