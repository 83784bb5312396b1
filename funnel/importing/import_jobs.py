"""Importing a CSV from the browser: upload, map, preview, confirm, progress, report.

No Flask in here. The steps, each a state of an ``ImportJob``:

1. ``uploaded``: the file is stored with the job (UTF-8 checked, size capped).
2. ``previewed``: the marketer mapped its columns to ours and saw, without
   anything written, what would happen: how many are new, already on the list,
   repeated, suppressed, which earlier pending imports would be confirmed, and
   every bad row with its reason.
3. ``queued``: confirmed. The worker (never the web request) runs it, updating
   ``rows_done`` as each batch commits, so the page can show progress.
4. ``done`` (with the report) or ``failed`` (with the reason).

A confirmed import ("these people consented") requires the marketer to say
where that consent came from; it is kept in each imported person's consent
record, with the admin who stated it.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from funnel.config import Settings
from funnel.core.states import ConsentAction
from funnel.importing import importer
from funnel.importing.csv_files import csv_rows
from funnel.models import ImportJob

log = logging.getLogger(__name__)

MAX_BYTES = 20 * 1024 * 1024
FIELDS = ("email", "first_name", "status", "source")
IGNORE = ""
SAMPLE_ROWS = 5
MAX_BAD_SHOWN = 200
CONSENT_SOURCE_MAX = 300
# Column names people use for our fields, lower-cased, compared without spaces/_/-.
ALIASES = {
    "email": ("email", "emailaddress", "mail", "e-mail", "address"),
    "first_name": ("firstname", "first", "givenname", "name", "forename"),
    "status": ("status", "state"),
    "source": ("source", "utmsource", "origin", "list"),
}

UPLOADED, PREVIEWED, QUEUED, RUNNING, DONE, FAILED = (
    "uploaded", "previewed", "queued", "running", "done", "failed")
JOB_STATES = (UPLOADED, PREVIEWED, QUEUED, RUNNING, DONE, FAILED)


class ImportInputError(ValueError):
    """What the marketer must fix before going on; the message says what."""


# -- reading the upload -----------------------------------------------------------

def decode_upload(data: bytes, filename: str) -> str:
    if not data.strip():
        raise ImportInputError("That file is empty.")
    if len(data) > MAX_BYTES:
        raise ImportInputError(f"That file is larger than {MAX_BYTES // (1024 * 1024)} MB; "
                               "split it and import the parts one after the other.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportInputError(
            f"{filename or 'The file'} is not UTF-8 text ({exc.reason} at byte {exc.start}). "
            "In a spreadsheet, save it as \"CSV UTF-8\".") from exc
    if "\x00" in text:
        raise ImportInputError("That is not a CSV file (it contains binary data).")
    header, _rows = sample(text)
    if not any(h.strip() for h in header):
        raise ImportInputError("The first row is empty; it should name the columns.")
    return text


def sample(text: str, n: int = SAMPLE_ROWS) -> tuple[list[str], list[list[str]]]:
    """The header and the first ``n`` rows, as the mapping page shows them."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
        rows = []
        for values in reader:
            if any(v.strip() for v in values):
                rows.append(values)
            if len(rows) >= n:
                break
    except (StopIteration, csv.Error) as exc:
        raise ImportInputError(f"That is not a readable CSV file ({exc}).") from exc
    return header, rows


def _squash(name: str) -> str:
    return "".join(c for c in name.strip().lower() if c.isalnum() or c == "-")


def guess_mapping(header: list[str]) -> list[str]:
    """Our field for each column ("" = ignore), by name; each field used once."""
    out: list[str] = []
    used: set[str] = set()
    for name in header:
        key = _squash(name).replace("-", "")
        choice = next((f for f, names in ALIASES.items() if f not in used
                       and key in {n.replace("-", "") for n in names}), IGNORE)
        used.add(choice)
        out.append(choice)
    return out


def check_mapping(header: list[str], mapping: list[str]) -> list[str]:
    if len(mapping) != len(header):
        raise ImportInputError("Choose what each column holds.")
    chosen = [m for m in mapping if m]
    bad = [m for m in chosen if m not in FIELDS]
    if bad:
        raise ImportInputError(f"Unknown field {bad[0]!r}.")
    if "email" not in chosen:
        raise ImportInputError("Choose which column holds the email address.")
    repeated = sorted({m for m in chosen if chosen.count(m) > 1})
    if repeated:
        raise ImportInputError(f"Two columns are mapped to {repeated[0]}; choose one.")
    return mapping


def check_consent(confirmed: bool, consent_source: str) -> str:
    source = " ".join((consent_source or "").split())
    if any(c in (consent_source or "") for c in "\x00"):
        raise ImportInputError("The consent source contains a character we cannot store.")
    if confirmed and len(source) < 5:
        raise ImportInputError(
            "Importing people as confirmed needs a statement of where their consent came "
            "from (for example \"sign-up sheet at the 2026 Spring 10K, with the tick box\").")
    if len(source) > CONSENT_SOURCE_MAX:
        raise ImportInputError(f"Keep the consent source under {CONSENT_SOURCE_MAX} characters.")
    return source


def mapped_rows(text: str, mapping: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line, {our field: value}) for each non-empty row; line numbers as in the file."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, [])
    return csv_rows(reader, mapping, len(header))


# -- the report kept with the job --------------------------------------------------

@dataclass
class Outcome:
    rows: int = 0
    added: int = 0
    confirmed_now: int = 0
    already_listed: int = 0
    duplicates: int = 0
    suppressed: int = 0
    bad: list[tuple[int, str]] = field(default_factory=list)
    bad_total: int = 0

    @classmethod
    def from_report(cls, r: importer.ImportReport) -> Outcome:
        return cls(rows=r.rows, added=r.added, confirmed_now=r.confirmed_now,
                   already_listed=r.already_listed, duplicates=r.duplicates,
                   suppressed=r.suppressed, bad=[(b.line, b.problem) for b in
                                                 r.bad[:MAX_BAD_SHOWN]], bad_total=len(r.bad))

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | None) -> Outcome | None:
        if not text:
            return None
        data = json.loads(text)
        data["bad"] = [tuple(b) for b in data.get("bad", [])]
        return cls(**data)


def job_mapping(job: ImportJob) -> list[str]:
    return json.loads(job.mapping or "[]")


def preview(session: Session, job: ImportJob, settings: Settings, now: datetime) -> Outcome:
    """What confirming would do, computed without writing anything."""
    report = importer.import_rows(
        session, mapped_rows(job.content, job_mapping(job)), confirmed=job.confirmed, now=now,
        settings=settings, origin=job.filename, consent_source=job.consent_source,
        admin=job.created_by, dry_run=True,
    )
    session.rollback()
    return Outcome.from_report(report)


# -- running (the worker's side) ----------------------------------------------------

def run_pending(sessions: sessionmaker[Session], settings: Settings, now: datetime) -> int:
    """Run every queued import, oldest first; returns how many ran."""
    ran = 0
    while True:
        with sessions() as s:
            job_id = s.scalar(select(ImportJob.id).where(ImportJob.state == QUEUED)
                              .order_by(ImportJob.id).limit(1))
            if job_id is None:
                return ran
            # Claimed by a conditional update: two workers never run the same file.
            result = s.execute(update(ImportJob).where(ImportJob.id == job_id,
                                                        ImportJob.state == QUEUED)
                                .values(state=RUNNING, started_at=now, rows_done=0))
            claimed = int(getattr(result, "rowcount", 0) or 0)  # a DML result has a row count
            s.commit()
        if claimed:
            run(sessions, job_id, settings, now)
            ran += 1


def run(sessions: sessionmaker[Session], job_id: int, settings: Settings, now: datetime) -> None:
    with sessions() as s, sessions() as progress_session:
        job = s.get(ImportJob, job_id)
        assert job is not None
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            done += n
            progress_session.execute(update(ImportJob).where(ImportJob.id == job_id)
                                     .values(rows_done=done))
            progress_session.commit()

        try:
            report = importer.import_rows(
                s, mapped_rows(job.content, job_mapping(job)), confirmed=job.confirmed,
                now=now, settings=settings, origin=f"#{job.id} {job.filename}",
                consent_source=job.consent_source, admin=job.created_by, progress=progress,
            )
        except Exception as exc:  # reported on the page; what committed stays (safe to re-run)
            log.exception("import %s failed", job_id)
            s.rollback()
            job = s.get(ImportJob, job_id)
            assert job is not None
            job.state, job.error, job.finished_at = FAILED, str(exc)[:1000], now
            s.commit()
            return
        job = s.get(ImportJob, job_id)
        assert job is not None
        job.state, job.finished_at = DONE, now
        job.rows_done = report.rows
        job.report = Outcome.from_report(report).to_json()
        s.commit()


# -- opt-in emails for pending imports ------------------------------------------------

DEFAULT_OPTIN_DAILY_MAX = 200


@dataclass(frozen=True)
class OptinStatus:
    waiting: int  # pending from this import, never sent a confirmation
    cap: int


def _origin_page(job: ImportJob) -> str:
    return f"import: #{job.id} {job.filename}"[:500]


def _waiting(job: ImportJob):
    from funnel.core import lifecycle
    from funnel.models import ConsentRecord, Subscriber

    return (select(Subscriber.id)
            .join(ConsentRecord, ConsentRecord.subscriber_id == Subscriber.id)
            .where(ConsentRecord.action == ConsentAction.IMPORT, ConsentRecord.page == _origin_page(job),
                   Subscriber.status == lifecycle.PENDING, Subscriber.confirm_sent_at.is_(None)))


def daily_cap(settings: Settings) -> int:
    return int(getattr(settings, "import_optin_daily_max", DEFAULT_OPTIN_DAILY_MAX))


def optin_status(session: Session, job: ImportJob, settings: Settings, now: datetime
                 ) -> OptinStatus:
    from sqlalchemy import func

    waiting = session.scalar(select(func.count()).select_from(_waiting(job).subquery())) or 0
    return OptinStatus(waiting=waiting, cap=daily_cap(settings))


def send_optins(sessions: sessionmaker[Session], settings: Settings, now: datetime) -> int:
    """Queue the opt-in emails requested for finished imports, within today's cap.

    Each is the confirmation email, queued as system mail (``funnel.subscribers.system_mail``,
    with its per-address caps); the worker's next pass sends it. Someone who
    signed up, was confirmed or unsubscribed meanwhile is skipped, and nobody is
    queued twice (``confirm_sent_at`` is set when it is queued).
    """
    from funnel.models import AppState, Subscriber
    from funnel.subscribers import system_mail

    key = f"optin_sent:{now:%Y-%m-%d}"
    queued = 0
    with sessions() as s:
        jobs = list(s.scalars(select(ImportJob).where(
            ImportJob.optin_requested_at.is_not(None), ImportJob.state == DONE,
            ImportJob.confirmed.is_(False)).order_by(ImportJob.id)))
        for job in jobs:
            counter = s.get(AppState, key)
            room = daily_cap(settings) - (int(counter.value) if counter else 0)
            if room <= 0:
                break
            ids = list(s.scalars(_waiting(job).order_by(Subscriber.id).limit(room)))
            for sub in s.scalars(select(Subscriber).where(Subscriber.id.in_(ids))
                                 .order_by(Subscriber.id)):
                if not system_mail.queue(s, sub, system_mail.CONFIRM, now):
                    continue
                if counter is None:
                    counter = AppState(key=key, value="0")
                    s.add(counter)
                counter.value = str(int(counter.value) + 1)
                job.optin_sent = (job.optin_sent or 0) + 1
                queued += 1
            s.commit()
    return queued
