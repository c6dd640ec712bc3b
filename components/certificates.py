"""The edge's certificate and key, as secret Outputs, for the stack's tls.mode."""

from __future__ import annotations

from typing import Optional

import pulumi

from .self_signed import SelfSignedCertificate
from .settings import Settings


class Certificates(pulumi.ComponentResource):
    """`provided`: the user's PEMs (validated while settings loaded). `self-signed`: generated once and kept.

    `off`, `acme`: none here (acme: the ACME container publishes them in its volume, components/acme.py).
    """

    certificate_pem: Optional[pulumi.Output[str]] = None
    private_key_pem: Optional[pulumi.Output[str]] = None
    self_signed: Optional[SelfSignedCertificate] = None

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:components:Certificates", name, None, opts)
        tls = settings.tls
        if tls.mode == "provided" and tls.certificate and tls.privateKey:
            self.certificate_pem = pulumi.Output.secret(tls.certificate.get_secret_value())
            self.private_key_pem = pulumi.Output.secret(tls.privateKey.get_secret_value())
        elif tls.mode == "self-signed":
            self.self_signed = SelfSignedCertificate(f"{name}-self-signed", settings.domain,
                                                     pulumi.ResourceOptions(parent=self))
            self.certificate_pem = self.self_signed.cert_pem
            self.private_key_pem = self.self_signed.key_pem
        self.register_outputs({"mode": tls.mode})

    @property
    def present(self) -> bool:
        return self.certificate_pem is not None
