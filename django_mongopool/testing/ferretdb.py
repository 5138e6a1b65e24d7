"""Build and run FerretDB v1.24.2 (SQLite backend), the real test and demo server.

Only the project's scripts and test fixtures use this; the app itself never
starts processes. Building needs the Go toolchain and the Go module proxy;
the binary is cached (``MONGOPOOL_CACHE_DIR``, default ``~/.cache/django-mongopool``)
so only the first build is slow. ``MONGOPOOL_FERRETDB_BIN`` points at a
binary built elsewhere.

    python -m django_mongopool.testing.ferretdb build     # print the binary's path
    python -m django_mongopool.testing.ferretdb serve     # run one on a free port
    python -m django_mongopool.testing.ferretdb serve --tls --auth   # production-shaped

``FerretDB(tls=True, auth=True)`` is the production-shaped server: it listens on
TLS only (no plain TCP listener; readiness is read from its "Listening on TLS"
log line), with a throw-away CA and a server certificate for ``IP:127.0.0.1`` and
``DNS:localhost`` generated at start (``cryptography`` package, the ``test``
extra) into a temporary directory removed by ``cleanup()``, and SCRAM-SHA-256
authentication with a generated user and random password (FerretDB's
``--test-enable-new-auth --setup-database=admin``). A second, unrelated CA
(``untrusted_ca_file``) is written beside it for "certificate not trusted" tests.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

VERSION = "v1.24.2"
MODULE = "github.com/FerretDB/FerretDB"
START_TIMEOUT = 60.0

_LISTEN = re.compile(r"Listening on (?:TCP|TLS) (\S+):(\d+)")
_DEBUG = re.compile(r"Starting debug server on http://(\S+?):(\d+)/debug")


class FerretDBUnavailable(RuntimeError):
    """FerretDB could not be built or started."""


def cache_dir() -> Path:
    explicit = os.environ.get("MONGOPOOL_CACHE_DIR")
    if explicit:
        return Path(explicit).resolve()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "django-mongopool"


def binary_path() -> Path:
    explicit = os.environ.get("MONGOPOOL_FERRETDB_BIN")
    if explicit:
        return Path(explicit)
    return cache_dir() / f"ferretdb-{VERSION}" / "ferretdb"


def _run(cmd: list[str], cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FerretDBUnavailable(
            f"{' '.join(cmd)} failed with exit code {result.returncode}:\n{result.stderr[-4000:]}"
        )
    return result.stdout


def build(log: bool = True) -> Path:
    """Build FerretDB once into the cache and return the binary's path.

    Recipe (see FERRETDB.md): the module zip lacks build/version/version.txt,
    so a plain ``go install`` builds a binary that panics at start; we copy the
    module, write that file, and build without the PostgreSQL backend.
    """
    binary = binary_path()
    if binary.exists():
        return binary
    if os.environ.get("MONGOPOOL_FERRETDB_BIN"):
        raise FerretDBUnavailable(f"MONGOPOOL_FERRETDB_BIN={binary} does not exist.")
    go = shutil.which("go")
    if go is None:
        raise FerretDBUnavailable(
            "The Go toolchain (go) is not on PATH; it is needed once to build FerretDB "
            f"{VERSION}. Install Go, or set MONGOPOOL_FERRETDB_BIN to a built ferretdb binary, "
            "or set MONGOPOOL_TEST_URL to a running MongoDB."
        )
    binary.parent.mkdir(parents=True, exist_ok=True)
    with open(binary.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        if binary.exists():
            return binary
        if log:
            print(
                f"Building FerretDB {VERSION} (first time only, a few minutes)...", file=sys.stderr
            )
        info = json.loads(_run([go, "mod", "download", "-json", f"{MODULE}@{VERSION}"]))
        with tempfile.TemporaryDirectory(prefix="ferretdb-src-") as tmp:
            src = Path(tmp) / "src"
            shutil.copytree(info["Dir"], src)
            for path in src.rglob("*"):
                path.chmod(path.stat().st_mode | 0o200)
            (src / "build" / "version" / "version.txt").write_text(VERSION + "\n")
            partial = binary.with_suffix(".partial")
            _run(
                [
                    go,
                    "build",
                    "-buildvcs=false",
                    "-tags",
                    "ferretdb_no_postgresql",
                    "-o",
                    str(partial),
                    "./cmd/ferretdb",
                ],
                cwd=src,
                env={**os.environ, "GOFLAGS": "-mod=mod"},
            )
            partial.rename(binary)
    return binary


# --- throw-away TLS material -------------------------------------------------------------


@dataclass(frozen=True)
class TLSFiles:
    """PEM files of one throw-away PKI: the server's CA, its certificate and key, an unrelated CA."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    untrusted_ca_file: Path


def _name(common_name: str) -> Any:
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "django-mongopool tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _new_key() -> Any:
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _certificate(
    subject: str, key: Any, issuer: tuple[str, Any] | None, extensions: list[tuple[Any, bool]]
) -> Any:
    """A certificate valid from yesterday for 30 days; self-signed when ``issuer`` is None."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    issuer_name, issuer_key = issuer or (subject, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _ca_extensions() -> list[tuple[Any, bool]]:
    from cryptography import x509

    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    return [(x509.BasicConstraints(ca=True, path_length=0), True), (usage, True)]


def _server_extensions() -> list[tuple[Any, bool]]:
    import ipaddress

    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    usage = x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=True,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    names = x509.SubjectAlternativeName(
        [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    )
    return [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (usage, True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (names, False),
    ]


def _write_pem(path: Path, data: bytes, private: bool = False) -> Path:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)
    return path


def _cert_pem(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return bytes(cert.public_bytes(serialization.Encoding.PEM))


def write_untrusted_ca(path: Path) -> Path:
    """A self-signed CA that signed nothing a server presents: trusting only it must fail."""
    key = _new_key()
    return _write_pem(
        path, _cert_pem(_certificate("untrusted test CA", key, None, _ca_extensions()))
    )


def generate_tls_files(directory: Path) -> TLSFiles:
    """A CA, a server certificate for 127.0.0.1/localhost signed by it, and an unrelated CA.

    Needs the ``cryptography`` package (in the ``test`` extra).
    """
    try:
        from cryptography.hazmat.primitives import serialization
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise FerretDBUnavailable(
            "FerretDB with TLS needs the 'cryptography' package (pip install 'django-mongopool[test]')."
        ) from exc
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, server_key = _new_key(), _new_key()
    ca_name = "django-mongopool throw-away test CA"
    ca = _certificate(ca_name, ca_key, None, _ca_extensions())
    server = _certificate("localhost", server_key, (ca_name, ca_key), _server_extensions())
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return TLSFiles(
        ca_file=_write_pem(directory / "ca.pem", _cert_pem(ca)),
        cert_file=_write_pem(directory / "server.pem", _cert_pem(server)),
        key_file=_write_pem(directory / "server-key.pem", key_pem, private=True),
        untrusted_ca_file=write_untrusted_ca(directory / "untrusted-ca.pem"),
    )


# --- the server ------------------------------------------------------------------------


class FerretDB:
    """One FerretDB process on loopback with its own SQLite directory.

    ``tls=True`` listens on TLS only, with certificates generated at start;
    ``auth=True`` turns on SCRAM authentication with a generated user and password
    (both are in ``url``).
    """

    def __init__(
        self,
        port: int = 0,
        data_dir: str | Path | None = None,
        *,
        tls: bool = False,
        auth: bool = False,
    ) -> None:
        self.requested_port = port
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="ferretdb-data-"))
        self.process: subprocess.Popen[bytes] | None = None
        self.port: int | None = None
        self.debug_port: int | None = None
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.tls = tls
        self.auth = auth
        self.tls_files: TLSFiles | None = None
        self._tls_dir: Path | None = None
        self.username = f"mongopool_{secrets.token_hex(4)}" if auth else None
        self.password = secrets.token_urlsafe(24) if auth else None

    @property
    def url(self) -> str:
        """``mongodb://`` URL with the credentials, ``tls=true`` and ``tlsCAFile`` as configured."""
        userinfo = ""
        if self.auth:
            userinfo = f"{quote_plus(str(self.username))}:{quote_plus(str(self.password))}@"
        options = []
        if self.tls:
            options += ["tls=true", f"tlsCAFile={quote(str(self.ca_file), safe='/')}"]
        if self.auth:
            options.append("authSource=admin")
        query = f"?{'&'.join(options)}" if options else ""
        return f"mongodb://{userinfo}127.0.0.1:{self.port}/{query}"

    @property
    def ca_file(self) -> Path | None:
        """The CA that signed the server's certificate (``tls=True`` only, after ``start()``)."""
        return self.tls_files.ca_file if self.tls_files else None

    @property
    def untrusted_ca_file(self) -> Path | None:
        """A CA unrelated to the server's certificate (``tls=True`` only, after ``start()``)."""
        return self.tls_files.untrusted_ca_file if self.tls_files else None

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.debug_port}/debug/metrics"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def _arguments(self, binary: Path, port: int) -> list[str]:
        arguments = [
            str(binary),
            "--handler=sqlite",
            f"--sqlite-url=file:{self.data_dir.resolve()}/",
            "--state-dir=-",
            "--telemetry=disable",
            "--debug-addr=127.0.0.1:0",
        ]
        if self.tls_files is not None:  # TLS only: an empty --listen-addr turns plain TCP off
            arguments += [
                "--listen-addr=",
                f"--listen-tls=127.0.0.1:{port}",
                f"--listen-tls-cert-file={self.tls_files.cert_file}",
                f"--listen-tls-key-file={self.tls_files.key_file}",
            ]
        else:
            arguments.append(f"--listen-addr=127.0.0.1:{port}")
        if self.auth:
            arguments += [
                "--test-enable-new-auth",
                "--setup-database=admin",
                f"--setup-username={self.username}",
            ]
        return arguments

    def _environment(self) -> dict[str, str]:
        """The password goes through FerretDB's environment, not its (world-readable) argv."""
        if not self.auth:
            return dict(os.environ)
        return {**os.environ, "FERRETDB_SETUP_PASSWORD": str(self.password)}

    def _prepare_tls(self) -> None:
        if self.tls and self.tls_files is None:
            self._tls_dir = Path(tempfile.mkdtemp(prefix="ferretdb-tls-"))
            self.tls_files = generate_tls_files(self._tls_dir)

    def start(self) -> FerretDB:
        binary = build()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_tls()
        port = self.port or self.requested_port
        with open(self.log_path, "ab") as log:
            offset = log.tell()
            self.process = subprocess.Popen(
                self._arguments(binary, port),
                env=self._environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self._wait_until_listening(offset)

    def _wait_until_listening(self, offset: int) -> FerretDB:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                text = fh.read().decode("utf-8", "replace")
            listen, debug = _LISTEN.search(text), _DEBUG.search(text)
            if listen and debug:
                self.port, self.debug_port = int(listen.group(2)), int(debug.group(2))
                return self
            if self.process.poll() is not None:
                raise FerretDBUnavailable(
                    f"FerretDB exited with code {self.process.returncode}:\n{text[-4000:]}"
                )
            time.sleep(0.05)
        self.stop()
        raise FerretDBUnavailable(f"FerretDB did not start within {START_TIMEOUT:.0f}s.")

    def _signal(self, sig: int) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, as a crash would (the data directory survives)."""
        self._signal(signal.SIGKILL)
        if self.process:
            self.process.wait(timeout=30)

    def pause(self) -> None:
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None:
            return
        self.resume()
        self._signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()

    def cleanup(self) -> None:
        self.stop()
        if self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)
            self._tls_dir = self.tls_files = None
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                self.log_path.unlink()

    def __enter__(self) -> FerretDB:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m django_mongopool.testing.ferretdb")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build FerretDB once and print the binary's path")
    serve = sub.add_parser("serve", help="run FerretDB in the foreground until interrupted")
    serve.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    serve.add_argument("--data-dir", help="SQLite directory (default: a new temporary one)")
    serve.add_argument("--url-file", help="write the server's mongodb:// URL into this file")
    serve.add_argument(
        "--tls", action="store_true", help="listen on TLS only, with a throw-away CA (tlsCAFile)"
    )
    serve.add_argument(
        "--auth", action="store_true", help="SCRAM authentication with a generated user/password"
    )
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            print(build())
            return 0
        server = FerretDB(
            port=args.port, data_dir=args.data_dir, tls=args.tls, auth=args.auth
        ).start()
    except FerretDBUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.url_file:
        Path(args.url_file).write_text(server.url + "\n")
    print(
        f"FerretDB {VERSION} listening on {server.url} (metrics: {server.metrics_url})", flush=True
    )
    stop = False

    def _stop(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        while not stop and server.process and server.process.poll() is None:
            time.sleep(0.2)
    finally:
        server.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
