"""Provided certificates: the chain must link up, and an expiry within 21 days is warned about."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from components import pem
from tests.unit.conftest import certificate


def issued(subject: str, issuer_name: str, issuer_key, days: int = 90, ca: bool = False, san: bool = True):
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
    cert = builder.sign(issuer_key or key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key


def key_pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def test_a_chain_whose_intermediate_did_not_sign_the_leaf_is_refused():
    ca_key = ec.generate_private_key(ec.SECP256R1())
    other_ca_key = ec.generate_private_key(ec.SECP256R1())
    leaf, leaf_key = issued("app.example.com", "Intermediate CA", ca_key)
    wrong_intermediate, _ = issued("Intermediate CA", "Root", other_ca_key, ca=True, san=False)
    problems = pem.check_certificate(leaf + wrong_intermediate, key_pem(leaf_key), {"app.example.com": "the domain"})
    assert [field for field, _ in problems] == ["certificate"], problems
    assert "chain" in problems[0][1]


def test_a_chain_in_the_wrong_order_is_refused():
    root_key = ec.generate_private_key(ec.SECP256R1())
    intermediate, intermediate_key = issued("Intermediate CA", "Root", root_key, ca=True, san=False)
    leaf, leaf_key = issued("app.example.com", "Intermediate CA", intermediate_key)
    assert pem.check_certificate(leaf + intermediate, key_pem(leaf_key), {"app.example.com": "the domain"}) == []
    problems = pem.check_certificate(intermediate + leaf, key_pem(leaf_key), {"app.example.com": "the domain"})
    assert any("chain" in message for _, message in problems), problems


def test_an_expiry_within_21_days_is_warned_about():
    cert, _ = certificate("app.example.com", days=10)
    warning = pem.expiry_warning(cert)
    assert warning is not None and "expires on" in warning and ("10 days" in warning or "9 days" in warning)


def test_an_expiry_beyond_21_days_is_not_warned_about():
    cert, _ = certificate("app.example.com", days=60)
    assert pem.expiry_warning(cert) is None
