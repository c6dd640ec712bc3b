"""Fixtures for tests that run the program under mocks: stacks by scenario, and TLS material."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components import self_signed
from tests.program import ProgramRun, run_program

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKq3nR7m2eM0K9kq8m1dJmS0Vn8r3vQ2yq4l2QJf0b7c"
PROD_DOMAIN = "app.example.com"


def certificate(domain: str, days: int = 90, key=None) -> tuple[str, str]:
    """A certificate for domain valid `days` from now (negative: already expired), and its key."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = dt.datetime.now(dt.timezone.utc)
    start, end = (now - dt.timedelta(days=10), now + dt.timedelta(days=days)) if days > 0 else \
        (now - dt.timedelta(days=30), now + dt.timedelta(days=days))
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain)]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


@pytest.fixture(scope="session")
def prod_tls() -> dict:
    cert, key = certificate(PROD_DOMAIN)
    return {"mode": "provided", "certificate": cert, "privateKey": key}


def prod_secrets(tls: dict, private_key: str | None = "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n") -> dict:
    target = {"kind": "ssh", "host": "203.0.113.10", "user": "deploy", "hostKey": HOST_KEY}
    if private_key:
        target["privateKey"] = private_key
    return {"webstack:tls": tls, "webstack:target": target}


@pytest.fixture(scope="session")
def dev() -> ProgramRun:
    return run_program("dev")


@pytest.fixture(scope="session")
def prod(prod_tls) -> ProgramRun:
    return run_program("prod", secret_overrides=prod_secrets(prod_tls))


@pytest.fixture(scope="session")
def dev_next_release() -> ProgramRun:
    return run_program("dev", overrides={"webstack:release": "dev-2"})


@pytest.fixture(scope="session")
def plain_http() -> ProgramRun:
    return run_program("dev", overrides={"webstack:tls": {"mode": "off"}})


__all__ = ["certificate", "self_signed"]
