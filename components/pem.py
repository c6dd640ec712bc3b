"""Checks on user-provided TLS material, run while settings load (before any resource is declared)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Mapping

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID


class PemError(ValueError):
    """A certificate or key that cannot be used; the message says why in user terms."""


def load_certificate_chain(pem: str) -> list[x509.Certificate]:
    try:
        chain = x509.load_pem_x509_certificates(pem.encode())
    except ValueError as exc:
        raise PemError("is not a PEM certificate (expected '-----BEGIN CERTIFICATE-----' blocks)") from exc
    if not chain:
        raise PemError("holds no certificate")
    return chain


def load_private_key(pem: str):
    try:
        return serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise PemError("is not an unencrypted PEM private key (expected '-----BEGIN PRIVATE KEY-----')") from exc


def check_not_expired(cert: x509.Certificate, now: dt.datetime | None = None) -> None:
    now = now or dt.datetime.now(dt.timezone.utc)
    if cert.not_valid_after_utc <= now:
        raise PemError(f"expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    if cert.not_valid_before_utc > now:
        raise PemError(f"is not valid before {cert.not_valid_before_utc:%Y-%m-%d}")


def check_key_matches(cert: x509.Certificate, key) -> None:
    def public_der(public_key) -> bytes:
        return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    if public_der(cert.public_key()) != public_der(key.public_key()):
        raise PemError("does not match the certificate's public key")


def check_chain(chain: list[x509.Certificate]) -> None:
    """Each certificate must be issued and signed by the next one (leaf first, as nginx sends them)."""
    for position, (cert, issuer) in enumerate(zip(chain, chain[1:]), start=1):
        try:
            cert.verify_directly_issued_by(issuer)
        except (ValueError, TypeError, InvalidSignature):
            raise PemError(f"is not a valid chain: certificate {position} ({cert.subject.rfc4514_string()}) is not "
                           f"issued by the next one ({issuer.subject.rfc4514_string()}); put the leaf first, "
                           "then each issuer in order") from None


EXPIRY_WARNING_DAYS = 21


def expiry_warning(cert_pem: str, now: dt.datetime | None = None) -> str | None:
    """A warning when the leaf expires within EXPIRY_WARNING_DAYS (still accepted: renewal is the fix)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    leaf = load_certificate_chain(cert_pem)[0]
    left = leaf.not_valid_after_utc - now
    if left > dt.timedelta(days=EXPIRY_WARNING_DAYS):
        return None
    return (f"the certificate expires on {leaf.not_valid_after_utc:%Y-%m-%d} (in {left.days} days); "
            "renew it and set tls.certificate again")


def names_covered(cert: x509.Certificate) -> list[str]:
    """DNS names and IPs the certificate is valid for (SAN; the CN only when there is no SAN, as browsers did)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        return san.get_values_for_type(x509.DNSName) + [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        return [attr.value for attr in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]


def covers(name: str, patterns: list[str]) -> bool:
    name = name.lower().rstrip(".")
    for pattern in (p.lower().rstrip(".") for p in patterns):
        if pattern == name:
            return True
        # A wildcard covers exactly one label: *.example.com covers www.example.com, not example.com.
        if pattern.startswith("*.") and "." in name and name.split(".", 1)[1] == pattern[2:]:
            try:
                ipaddress.ip_address(name)
            except ValueError:
                return True
    return False


def check_coverage(cert: x509.Certificate, names: Mapping[str, str]) -> None:
    """names: each name the certificate must cover -> what it is, for the message ("the domain")."""
    covered = names_covered(cert)
    missing = [f"{what} '{name}'" for name, what in names.items() if not covers(name, covered)]
    if missing:
        raise PemError(f"does not cover {', '.join(missing)} (it covers: {', '.join(covered) or 'nothing'})")


def check_certificate(cert_pem: str, key_pem: str, names: Mapping[str, str]) -> list[tuple[str, str]]:
    """Return (field, problem) pairs for a provided certificate/key; empty when both are usable for every name
    (name -> what it is: {"app.example.com": "the domain"})."""
    problems: list[tuple[str, str]] = []
    cert = key = None
    try:
        chain = load_certificate_chain(cert_pem)
        cert = chain[0]
        check_not_expired(cert)
        check_chain(chain)
        check_coverage(cert, names)
    except PemError as exc:
        problems.append(("certificate", str(exc)))
    try:
        key = load_private_key(key_pem)
    except PemError as exc:
        problems.append(("privateKey", str(exc)))
    if cert is not None and key is not None:
        try:
            check_key_matches(cert, key)
        except PemError as exc:
            problems.append(("privateKey", str(exc)))
    return problems


def check_ca_certificate(ca_pem: str) -> str | None:
    """A problem with a CA certificate given as PEM (the trust anchor of a private ACME server), or None."""
    try:
        certs = load_certificate_chain(ca_pem)
        check_not_expired(certs[0])
    except ValueError as exc:
        return str(exc)
    return None
