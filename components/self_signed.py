"""A self-signed certificate generated once and kept in the stack's state (a Pulumi dynamic resource).

Generating it in the program would give a new certificate on every preview; as a resource it is created on
the first `up`, stays the same afterwards, and is replaced only when the domain changes.
"""

from __future__ import annotations

import datetime as dt
import ipaddress

import pulumi
from pulumi.dynamic import CreateResult, DiffResult, Resource, ResourceProvider

VALID_DAYS = 365   # Mozilla intermediate: at most 366 days


def generate(domain: str, valid_days: int = VALID_DAYS) -> tuple[str, str]:
    """Return (certificate PEM, private key PEM): ECDSA P-256, SAN domain, localhost and 127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)])
    now = dt.datetime.now(dt.timezone.utc)
    alt_names = [x509.DNSName(n) for n in dict.fromkeys([domain, "localhost"])]
    alt_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=valid_days))
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem.decode()


class SelfSignedProvider(ResourceProvider):
    def create(self, props: dict) -> CreateResult:
        cert_pem, key_pem = generate(props["domain"])
        return CreateResult(id_=f"self-signed-{props['domain']}", outs={**props, "certPem": cert_pem, "keyPem": key_pem})

    def diff(self, _id: str, olds: dict, news: dict) -> DiffResult:
        changed = olds.get("domain") != news.get("domain")
        return DiffResult(changes=changed, replaces=["domain"] if changed else [], delete_before_replace=False)


class SelfSignedCertificate(Resource):
    cert_pem: pulumi.Output[str]
    key_pem: pulumi.Output[str]

    def __init__(self, name: str, domain: str, opts: pulumi.ResourceOptions | None = None):
        secret = pulumi.ResourceOptions(additional_secret_outputs=["keyPem"])
        super().__init__(SelfSignedProvider(), name, {"domain": domain, "certPem": None, "keyPem": None},
                         pulumi.ResourceOptions.merge(opts, secret))
        self.cert_pem = self.certPem     # type: ignore[attr-defined]  (dynamic outputs are attributes)
        self.key_pem = pulumi.Output.secret(self.keyPem)   # type: ignore[attr-defined]
