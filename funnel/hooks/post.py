"""One webhook request: to a checked address, within a time limit, reading at most
a few kilobytes of the answer. Redirects are not followed (they could lead to a
private address, and the signature is for this URL only)."""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from funnel.hooks.addresses import Target, UnsafeURL, resolve

USER_AGENT = "RunStrongerFunnel-Webhooks/1"


class PostError(Exception):
    """The request got no usable answer (refused, timed out, unsafe, too big)."""


@dataclass(frozen=True)
class Answer:
    status: int
    body: str  # the first part of the response, for the admin page


class Cancel:
    """Lets another thread, or a signal handler, cut the request in flight: a worker
    told to stop must not wait out an endpoint that hangs. Re-entrant, because a
    signal handler runs in the very thread that may be attaching a socket."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._sock: socket.socket | None = None
        self.cancelled = False

    def attach(self, sock: socket.socket | None) -> None:
        with self._lock:
            self._sock = sock
            if self.cancelled:
                self._shut()

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            self._shut()

    def _shut(self) -> None:
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)  # the blocked read returns at once
            except OSError:
                pass


class _PinnedHTTPS(http.client.HTTPSConnection):
    """HTTPS to an address we checked, with the certificate checked for the name."""

    def __init__(self, address: str, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout,
                         context=ssl.create_default_context())
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(  # type: ignore[attr-defined]
            sock, server_hostname=self.host)


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, address: str, target: Target, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


def post(target: Target, body: bytes, headers: dict[str, str], *, timeout: float,
         max_bytes: int, allow_private: bool, cancel: Cancel | None = None) -> Answer:
    """POST ``body``; the whole exchange takes at most about ``timeout`` seconds, or
    less when ``cancel`` is cancelled (then PostError says so)."""
    if cancel is not None and cancel.cancelled:
        raise PostError("not sent: the worker is stopping")
    try:
        return _post(target, body, headers, timeout=timeout, max_bytes=max_bytes,
                     allow_private=allow_private, cancel=cancel)
    except PostError:
        if cancel is not None and cancel.cancelled:
            raise PostError("cut short: the worker is stopping") from None
        raise
    finally:
        if cancel is not None:
            cancel.attach(None)


def _post(target: Target, body: bytes, headers: dict[str, str], *, timeout: float,
          max_bytes: int, allow_private: bool, cancel: Cancel | None) -> Answer:
    deadline = time.monotonic() + timeout
    try:
        address = resolve(target, allow_private=allow_private)[0]
    except UnsafeURL as exc:
        raise PostError(str(exc)) from exc
    cls = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    conn = cls(address, target, timeout)
    try:
        conn.putrequest("POST", target.path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", target.host_header)
        for name, value in {**headers, "User-Agent": USER_AGENT,
                            "Content-Length": str(len(body))}.items():
            conn.putheader(name, value)
        conn.connect()
        if cancel is not None:
            cancel.attach(conn.sock)
        conn.endheaders(body)
        if conn.sock is not None:  # the answer's headers get only what time is left
            conn.sock.settimeout(max(0.001, deadline - time.monotonic()))
        resp = conn.getresponse()
        chunks: list[bytes] = []
        got = 0
        # Read in small pieces so a server dribbling bytes cannot hold us past
        # the deadline, and stop at the cap: we need the status, not the novel.
        while got < max_bytes:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PostError(f"timed out after {timeout:g} s reading the answer")
            if conn.sock is not None:
                conn.sock.settimeout(left)
            chunk = resp.read1(min(4096, max_bytes - got)) if hasattr(resp, "read1") else b""
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
        return Answer(resp.status, b"".join(chunks).decode("utf-8", "replace"))
    except TimeoutError as exc:
        raise PostError(f"timed out after {timeout:g} s") from exc
    except ssl.SSLError as exc:
        raise PostError(f"TLS failed: {exc}") from exc
    except (OSError, http.client.HTTPException) as exc:
        raise PostError(f"no answer: {exc.__class__.__name__}: {exc}") from exc
    finally:
        conn.close()
