"""A private certificate authority and a localhost server certificate for the emulator's HTTPS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

logger = logging.getLogger(__name__)

CA_VALIDITY = dt.timedelta(days=3650)
# 397 days is the longest server certificate lifetime that browsers accept.
SERVER_VALIDITY = dt.timedelta(days=397)
# A certificate this close to its end is replaced rather than served.
RENEW_BEFORE = dt.timedelta(days=1)
SERVER_DNS_NAMES = ("localhost",)
SERVER_IP_ADDRESSES = ("127.0.0.1",)


@dataclass(frozen=True)
class CertificatePaths:
    """PEM files of the emulator's CA and server certificate."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def ensure_certificates(state_dir: Path) -> CertificatePaths:
    """Create the CA and server certificate in `state_dir` unless valid ones are already there.

    The CA is replaced when a file is missing or it expires within a day. The server
    certificate is replaced in the same cases and whenever the CA is replaced.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    paths = CertificatePaths(
        ca_cert=state_dir / "ca.pem",
        ca_key=state_dir / "ca-key.pem",
        server_cert=state_dir / "server.pem",
        server_key=state_dir / "server-key.pem",
    )
    now = dt.datetime.now(dt.timezone.utc)

    ca_renewed = False
    ca_cert = _load_valid_certificate(paths.ca_cert, now)
    if ca_cert is None or not paths.ca_key.exists():
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_cert = _build_ca_certificate(ca_key, now)
        _write_key(paths.ca_key, ca_key)
        _write_certificate(paths.ca_cert, ca_cert)
        ca_renewed = True
        logger.info("Created emulator CA certificate %s", paths.ca_cert)
    else:
        ca_key = serialization.load_pem_private_key(paths.ca_key.read_bytes(), password=None)

    server_cert = _load_valid_certificate(paths.server_cert, now)
    if ca_renewed or server_cert is None or not paths.server_key.exists():
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_cert = _build_server_certificate(server_key, ca_key, ca_cert, now)
        _write_key(paths.server_key, server_key)
        _write_certificate(paths.server_cert, server_cert)
        logger.info("Created emulator server certificate %s", paths.server_cert)
    return paths


def _load_valid_certificate(path: Path, now: dt.datetime) -> x509.Certificate | None:
    if not path.exists():
        return None
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except ValueError:
        logger.warning("Replacing unreadable certificate %s", path)
        return None
    if certificate.not_valid_after_utc - RENEW_BEFORE <= now or certificate.not_valid_before_utc > now:
        logger.info("Replacing expired certificate %s", path)
        return None
    return certificate


def _build_ca_certificate(key: ec.EllipticCurvePrivateKey, now: dt.datetime) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "License Pools Graph emulator CA")])
    public_key = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )


def _build_server_certificate(
    key: ec.EllipticCurvePrivateKey,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    now: dt.datetime,
) -> x509.Certificate:
    alternative_names: list[x509.GeneralName] = [x509.DNSName(name) for name in SERVER_DNS_NAMES]
    alternative_names += [x509.IPAddress(ipaddress.ip_address(address)) for address in SERVER_IP_ADDRESSES]
    ca_key_identifier = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + SERVER_VALIDITY, ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_key_identifier),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_atomically(path, data, mode=0o600)


def _write_certificate(path: Path, certificate: x509.Certificate) -> None:
    _write_atomically(path, certificate.public_bytes(serialization.Encoding.PEM), mode=0o644)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    # Write then rename so a second emulator process never reads half a file.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)
