"""What the dashboard and ``flask status`` say about sending itself: which way mail
goes (SendGrid or the SMTP fallback) and, from the provider's events, whether the
brakes are on. Read-only; the worker writes the state it shows."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from funnel.control import brakes, mail_state
from funnel.core import brakes as rules
from funnel.models import MachineEvent
from funnel.transports.fallback import FallbackState, describe


@dataclass(frozen=True)
class MailHealth:
    fallback: FallbackState | None = None  # None: no fallback configured or never used
    brakes: brakes.BrakeState | None = None
    lines: list[tuple[str, str]] = field(default_factory=list)  # (level, text)

    @property
    def worst(self) -> str:
        levels = [level for level, _ in self.lines]
        return "fail" if "fail" in levels else "warn" if "warn" in levels else "pass"


def read(session: Session, fallback_configured: bool) -> MailHealth:
    lines: list[tuple[str, str]] = []
    fallback = mail_state.load(session) if fallback_configured else None
    if fallback is not None:
        level = "warn" if fallback.active or fallback.failing_since else "pass"
        lines.append((level, describe(fallback)))
    state = brakes.load(session)
    if state.paused:
        lines.append(("fail", f"Newsletters and sequences paused since {state.since} "
                              "(confirmations still go out): " + "; ".join(state.reasons)
                              + ". An admin resumes on the Sending page."))
    elif state.level == rules.WARN:
        lines.append(("warn", "Spam complaints or bounces are high (sending pauses at 0.3 % "
                              "complaints or 10 % bounces): " + "; ".join(state.reasons)))
    return MailHealth(fallback=fallback, brakes=state, lines=lines)


def machine_counts(session: Session, start: datetime, end: datetime) -> dict[str, int]:
    """Machine opens and scanner clicks in a period, shown apart from people's figures
    (which never include them: funnel/core/machine_events.py)."""
    counts = dict(session.execute(
        select(MachineEvent.kind, func.count()).where(MachineEvent.at >= start,
                                                      MachineEvent.at < end)
        .group_by(MachineEvent.kind)).all())
    return {"open": counts.get("open", 0), "click": counts.get("click", 0)}
