"""A form's verdict without building the form: the sign-up's fast path.

Building a WTForms form binds every field (its label, widget, flags and
translations): the sign-up form's eleven fields were the largest part of a
sign-up's own time in the profile (docs/million.md), while the checks are a few
comparisons. ``FormCheck`` reads the form's fields once and runs the fields' own
validators on a light stand-in, so a limit or a rule changed on the form is
changed here too.

It answers only when every field passes, and then its data is what the form's
``data`` would be. Anything it does not know as WTForms' plain text field
(another field type or one overriding how data is read or validated, a filter, a
default, a validator other than DataRequired, Length and Optional) turns it off
for that form; a field that fails, a multipart or JSON body, or an inline
validator that raises anything else makes it decline for that request. Either
way the caller builds the form, which gives the page its messages.
``FAST_SIGNUP_FORM=0`` always builds the form.
``tests/test_fast_paths_equal.py`` checks the same verdict and data for any input.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wtforms import Form
from wtforms.fields import StringField
from wtforms.validators import DataRequired, Length, Optional, StopValidation

# Validators whose whole behaviour is what they do to field.data / raw_data.
KNOWN_VALIDATORS = (DataRequired, Length, Optional)
# What a field may not override for its data and verdict to be StringField's.
PLAIN = ("process", "process_data", "process_formdata", "pre_validate", "post_validate",
         "validate", "_run_validation_chain")

Validator = Callable[[Any, Any], object]


class _Field:
    """What the validators read of a field."""

    __slots__ = ("data", "raw_data", "errors")

    def __init__(self, raw_data: list[str]) -> None:
        self.raw_data = raw_data
        self.data = raw_data[0] if raw_data else None
        self.errors: list[str] = []

    def gettext(self, string: str) -> str:
        return string

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        return singular if n == 1 else plural


class FormCheck:
    """``check(formdata)``: the data of a form that passes, or None."""

    def __init__(self, form: Form) -> None:
        self.fields: tuple[tuple[str, tuple[Validator, ...]], ...] | None = _plan(form)

    def check(self, formdata: Any) -> dict[str, str | None] | None:
        if self.fields is None or not formdata:
            return None
        data: dict[str, str | None] = {}
        for name, validators in self.fields:
            field = _Field(formdata.getlist(name) if name in formdata else [])
            for validator in validators:
                try:
                    validator(None, field)
                except StopValidation as stop:
                    if stop.args and stop.args[0]:
                        return None
                    break
                except ValueError:  # ValidationError: WTForms records it and goes on
                    return None
                except Exception:  # noqa: BLE001  (an inline check wanting the form: build it)
                    return None
            data[name] = field.data
        return data


def _plan(form: Form) -> tuple[tuple[str, tuple[Validator, ...]], ...] | None:
    fields = []
    for field in form:
        kind = type(field)
        if not isinstance(field, StringField) or any(
                getattr(kind, attr) is not getattr(StringField, attr) for attr in PLAIN):
            return None
        if field.filters or field.default is not None:
            return None
        if any(type(v) not in KNOWN_VALIDATORS for v in field.validators):
            return None
        inline = getattr(type(form), f"validate_{field.short_name}", None)
        fields.append((field.name, (*field.validators, *([inline] if inline else []))))
    return tuple(fields)
