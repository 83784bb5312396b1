"""The outbox transport on a full disk or an unwritable folder: a temporary
failure that the worker records and retries, with no half-written file left."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from sqlalchemy import select

from funnel.models import Subscriber
from tests.conftest import sign_up_and_confirm

# Runs the real transport in a child process, so the limits it runs under (another
# user, a maximum file size) cannot touch the test process.
CHILD = textwrap.dedent("""
    import sys
    from datetime import UTC, datetime
    from pathlib import Path
    from funnel.transports import Message, TransientSendError
    from funnel.transports.outbox import OutboxTransport

    folder = Path(sys.argv[1])
    msg = Message(key="k1", to="a@example.com", subject="Hello", html="<p>" + "x" * 20000,
                  text="x" * 20000, sender="s@example.com", date=datetime.now(UTC),
                  message_id="<m1@example.com>")
    try:
        OutboxTransport(folder).send([msg])
    except TransientSendError as exc:
        print("transient:", exc)
    else:
        print("sent")
""")


def run_child(folder: Path, **kwargs) -> str:
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder)], capture_output=True, check=False,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parent.parent,
                          **kwargs)
    assert done.returncode == 0, done.stderr
    return done.stdout


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_a_full_disk_is_a_temporary_failure_and_leaves_no_partial_file(tmp_path):
    import resource
    import signal

    folder = tmp_path / "outbox"
    folder.mkdir()

    def small_disk() -> None:
        # Writes past 4 KB fail with EFBIG, as on a full disk; without SIG_IGN the
        # kernel would kill the process instead.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))

    out = run_child(folder, preexec_fn=small_disk)
    assert out.startswith("transient:"), out
    assert leftovers(folder) == []  # no *.tmp, no half an email
    assert run_child(folder) == "sent\n"  # the negative control: with room, it is written
    assert leftovers(folder) == ["k1.eml"]


def without_root_override() -> None:
    """Root writes anywhere: drop the capabilities that let it, so the folder's
    own permissions decide, as they would for the web server's user."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "cannot drop root's file capabilities")


def test_an_unwritable_folder_is_a_temporary_failure(tmp_path):
    folder = tmp_path / "outbox"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        out = run_child(folder, preexec_fn=without_root_override if os.geteuid() == 0 else None)
    finally:
        folder.chmod(0o755)
    assert out.startswith("transient:") and "outbox" in out, out
    assert leftovers(folder) == []
    assert run_child(folder) == "sent\n"  # writable again: the same call succeeds


def test_the_worker_records_the_failure_and_sends_once_the_folder_is_back(
        app, client, db, clock, outbox, tmp_path):
    from funnel.runtime import make_worker

    sign_up_and_confirm(client, outbox, "pat@example.com")
    outbox_dir = Path(app.config["OUTBOX_DIR"])
    moved = tmp_path / "confirmations"
    outbox_dir.rename(moved)
    outbox_dir.write_text("not a folder")  # the outbox cannot be written now
    worker = make_worker(app.extensions["funnel"])
    report = worker.run_pass(clock.now)  # used to raise out of the pass
    assert (report.sent, report.retried) == (0, 1)
    db.rollback()
    sub = db.scalar(select(Subscriber).where(Subscriber.email == "pat@example.com"))
    d = next(d for d in sub.deliveries if d.kind == "drip")  # not the confirmation
    assert d.state == "retry" and "outbox" in d.error  # recorded, with the reason
    outbox_dir.unlink()
    clock.advance(hours=3)
    assert worker.run_pass(clock.now).sent == 1
    assert [m["Subject"] for m in outbox.to("pat@example.com")][-1].startswith("Part 1")
    assert not list(outbox_dir.glob("*.tmp"))
