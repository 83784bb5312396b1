"""A real SMTP server on loopback (aiosmtpd) that the tests script: STARTTLS or TLS
with a certificate made here, a login, and answers or dropped connections chosen
per recipient. Nothing leaves the machine."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import gc
import ipaddress
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.sendgrid_support import free_port

USER, PASSWORD = "funnel", "s3cret pass/word"
DROP = "drop"  # close the connection without answering


def make_certificate(folder: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for 127.0.0.1 and localhost."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "funnel test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                         critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@dataclass
class Received:
    to: list[str]
    sender: str
    message: EmailMessage
    peer: Any  # (host, port) of the client connection: one per connection


@dataclass
class Handler:
    """Answers each RCPT from ``rcpt_script[address]`` (a list, first used first),
    each DATA from ``data_script``; otherwise accepts."""

    received: list[Received] = field(default_factory=list)
    rcpt_script: dict[str, list[str]] = field(default_factory=dict)
    data_script: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _next(self, script: dict[str, list[str]], address: str) -> str | None:
        with self.lock:
            answers = script.get(address.lower())
            return answers.pop(0) if answers else None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        answer = self._next(self.rcpt_script, address)
        if answer == DROP:
            server.transport.close()
            return "421 closing"
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        answer = self._next(self.data_script, envelope.rcpt_tos[0])
        if answer and answer != DROP:
            return answer
        parsed = email.message_from_bytes(envelope.original_content or envelope.content,
                                          policy=email.policy.default)
        with self.lock:
            self.received.append(Received(list(envelope.rcpt_tos), envelope.mail_from,
                                          parsed, session.peer))  # type: ignore[arg-type]
        if answer == DROP:  # queued, but the client never hears so
            server.transport.close()
            return "250 queued (never heard)"
        return f"250 2.0.0 Ok: queued as Q{len(self.received):05d}"

    def times(self, address: str, subject_has: str = "") -> int:
        with self.lock:
            return sum(1 for r in self.received if address in r.to
                       and subject_has in str(r.message["Subject"]))

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(a for r in self.received for a in r.to)

    def last_to(self, address: str) -> EmailMessage:
        with self.lock:
            return next(r.message for r in reversed(self.received) if address in r.to)

    def peers(self) -> set[Any]:
        with self.lock:
            return {r.peer for r in self.received}


def _authenticate(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode() \
        and auth_data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


class SMTPServer:
    """``with SMTPServer(tmp_path, tls="starttls"|"tls"|"none") as server``; its ``url``
    carries the login; ``ca_file`` is what the client must trust."""

    def __init__(self, folder: Path, tls: str = "starttls", login: bool = True,
                 idle_timeout: float = 300) -> None:
        import ssl

        self.handler = Handler()
        self.port = free_port()
        self.ca_file, cert, key = make_certificate(folder)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        kwargs: dict[str, Any] = {"authenticator": _authenticate, "auth_required": login,
                                  "auth_require_tls": True, "timeout": idle_timeout}
        if tls == "starttls":
            kwargs.update(tls_context=context, require_starttls=True)
        elif tls == "tls":
            # aiosmtpd does not count implicit TLS as TLS when offering AUTH, so
            # an smtps server here takes no login (the STARTTLS one tests logins).
            assert not login
            kwargs.update(ssl_context=context)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                     **kwargs)
        scheme = "smtps" if tls == "tls" else "smtp"
        auth = "funnel:s3cret%20pass%2Fword@" if login else ""
        self.url = f"{scheme}://{auth}127.0.0.1:{self.port}"

    def __enter__(self) -> SMTPServer:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # Let the server read the clients' last goodbyes and close its side.
        time.sleep(0.1)
        self.controller.stop()
        with warnings.catch_warnings():
            # aiosmtpd's server side of a connection it closed in the middle (the tests'
            # dropped connections, its own start-up probe) is left to the garbage
            # collector: collected here, not blamed on the next test. Our client's
            # sockets are plain sockets on other ports and still warn.
            warnings.filterwarnings("ignore", "unclosed transport", ResourceWarning)
            warnings.filterwarnings("ignore", rf"unclosed <(socket\.socket|ssl\.SSLSocket) "
                                    rf".*laddr=\('127\.0\.0\.1', {self.port}\)", ResourceWarning)
            gc.collect()

    def config(self) -> dict[str, Any]:
        return {"MAIL_TRANSPORT": "smtp", "SMTP_URL": self.url, "SMTP_CA_FILE": str(self.ca_file),
                "SMTP_TIMEOUT": 10}
