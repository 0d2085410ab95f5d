"""``dockyard tls generate``: a CA plus a daemon and a client certificate for mutual TLS on the API.

Works on local files only (no daemon); ``dockyard.cli.main`` hands ``tls`` over before parsing, so
the ``cryptography`` import is paid by this command alone. Keys are ECDSA P-256, certificates are
signed with SHA-256; the daemon's certificate names ``localhost``, ``127.0.0.1`` and every ``--host``.
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from dockyard.errors import AlreadyExists, DockyardError, InvalidArgument

DEFAULT_DIR = "~/.dockyard/tls"
DEFAULT_DAYS = 365
LOCAL_NAMES = ("localhost", "127.0.0.1")
# file name → is it a private key (0600) or a certificate (0644)
FILES = {"ca.pem": False, "ca-key.pem": True, "server-cert.pem": False, "server-key.pem": True,
         "cert.pem": False, "key.pem": True}

Name = x509.DNSName | x509.IPAddress


@dataclass(frozen=True)
class Generated:
    directory: Path
    hosts: tuple[str, ...]      # the names in the daemon's certificate
    not_after: datetime.datetime


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dockyard tls", description="TLS helpers for the daemon's API.")
    sub = p.add_subparsers(dest="action", metavar="COMMAND", required=True)
    g = sub.add_parser("generate", help="make a CA, a daemon certificate and a client certificate",
                       description="Write ca.pem, ca-key.pem, server-cert.pem, server-key.pem, cert.pem "
                                   "and key.pem (keys 0600) for dockyardd --tlsverify and its clients.")
    g.add_argument("--dir", default=DEFAULT_DIR, help=f"where to write the files (default {DEFAULT_DIR})")
    g.add_argument("--host", dest="hosts", action="append", default=[], metavar="NAME_OR_IP",
                   help="a name or address clients reach the daemon at (repeatable, or comma-separated); "
                        "localhost and 127.0.0.1 are always included")
    g.add_argument("--days", type=int, default=DEFAULT_DAYS, help=f"validity in days (default {DEFAULT_DAYS})")
    g.add_argument("-f", "--force", action="store_true", help="overwrite files already in --dir")
    return p


def main(argv: list[str]) -> int:
    a = build_parser().parse_args(argv)
    hosts = [h.strip() for item in a.hosts for h in item.split(",") if h.strip()]
    try:
        result = generate(Path(a.dir).expanduser(), hosts, a.days, force=a.force)
    except DockyardError as exc:
        sys.stderr.write(f"Error: {exc}\n")
        return 1
    sys.stdout.write(instructions(result, hosts[0] if hosts else "127.0.0.1"))
    return 0


def san_entries(hosts: list[str]) -> list[Name]:
    """DNS and IP subject alternative names for ``hosts`` plus the local names, without repeats."""
    out: list[Name] = []
    seen: set[str] = set()
    for host in [*LOCAL_NAMES, *hosts]:
        text = host.strip("[]")
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            name = text.lower().rstrip(".")
            if not name or len(name) > 253 or any(c in name for c in " /:@*") or not name.isascii():
                raise InvalidArgument(f"invalid --host {host!r}: expected a DNS name or an IP address") from None
            key, entry = name, x509.DNSName(name)
        else:
            key, entry = str(ip), x509.IPAddress(ip)  # type: ignore[assignment]
        if key not in seen:
            seen.add(key)
            out.append(entry)
    return out


def generate(directory: Path, hosts: list[str], days: int = DEFAULT_DAYS, force: bool = False,
             now: datetime.datetime | None = None) -> Generated:
    """Write the six files into ``directory`` (created 0700). Either all are written or none: they
    go to temporary names first. Existing files are refused unless ``force``."""
    if days < 1:
        raise InvalidArgument(f"invalid --days {days}: expected a positive number of days")
    names = san_entries(hosts)
    if not force:
        present = sorted(n for n in FILES if (directory / n).exists())
        if present:
            raise AlreadyExists(f"{directory} already holds {', '.join(present)}: pick another --dir or pass --force")
    now = now or datetime.datetime.now(datetime.UTC)
    not_before = now - datetime.timedelta(minutes=5)  # tolerate a little clock skew
    not_after = now + datetime.timedelta(days=days)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dockyard"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "dockyard CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (x509.CertificateBuilder()
               .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(_key_usage(cert_sign=True), critical=True)
               .add_extension(ca_ski, critical=False)
               .sign(ca_key, hashes.SHA256()))

    def leaf(common_name: str, usage: x509.ObjectIdentifier, sans: list[Name] | None
             ) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dockyard"),
                                            x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                   .issuer_name(ca_name).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(not_before).not_valid_after(not_after)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(_key_usage(cert_sign=False), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
                                  critical=False))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        return key, builder.sign(ca_key, hashes.SHA256())

    server_key, server_cert = leaf("dockyard daemon", ExtendedKeyUsageOID.SERVER_AUTH, names)
    client_key, client_cert = leaf("dockyard client", ExtendedKeyUsageOID.CLIENT_AUTH, None)

    contents = {
        "ca.pem": _cert_pem(ca_cert), "ca-key.pem": _key_pem(ca_key),
        "server-cert.pem": _cert_pem(server_cert), "server-key.pem": _key_pem(server_key),
        "cert.pem": _cert_pem(client_cert), "key.pem": _key_pem(client_key),
    }
    _write_all(directory, contents)
    return Generated(directory.resolve(), tuple(str(n.value) for n in names), not_after)


def _key_usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                         data_encipherment=False, key_agreement=False, key_cert_sign=cert_sign,
                         crl_sign=cert_sign, encipher_only=False, decipher_only=False)


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write_all(directory: Path, contents: dict[str, bytes]) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise InvalidArgument(f"cannot create {directory}: {exc.strerror}") from exc
    temps: list[tuple[Path, Path]] = []
    try:
        for name, data in contents.items():
            tmp = directory / f".{name}.tmp-{os.getpid()}"
            # keys are born 0600: never readable by others, not even for an instant
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600 if FILES[name] else 0o644)
            temps.append((tmp, directory / name))
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600 if FILES[name] else 0o644)  # whatever the umask
        for tmp, final in temps:
            os.replace(tmp, final)
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError as exc:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise InvalidArgument(f"cannot write certificates to {directory}: {exc.strerror}") from exc


def instructions(result: Generated, host: str) -> str:
    d = result.directory
    addr = f"[{host}]" if ":" in host else host
    tcp = f"tcp://{addr}:2376"
    return f"""\
Wrote to {d} (valid until {result.not_after:%Y-%m-%d}):
  ca.pem                           the CA: daemon and clients trust what it signed
  ca-key.pem                       the CA's key: keep it offline, anyone holding it can mint client certificates
  server-cert.pem, server-key.pem  the daemon's certificate ({", ".join(result.hosts)})
  cert.pem, key.pem                a client certificate: whoever holds it is root on the daemon's host

Start the daemon (mutual TLS: only clients with a certificate from this CA get in):
  dockyardd -H unix:///run/dockyard/dockyard.sock -H {tcp} \\
    --tlsverify --tlscacert {d / "ca.pem"} \\
    --tlscert {d / "server-cert.pem"} --tlskey {d / "server-key.pem"}

Point a client at it:
  export DOCKYARD_HOST={tcp} DOCKER_HOST={tcp} DOCKER_TLS_VERIFY=1 DOCKER_CERT_PATH={d}
  dockyard version      # or: docker version
or with flags:
  dockyard --tlsverify --tlscacert {d / "ca.pem"} --tlscert {d / "cert.pem"} --tlskey {d / "key.pem"} -H {tcp} version
"""
