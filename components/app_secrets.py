"""The backend's environment: webstack's own variables, `backend.env`, `backend.secrets` and generated secrets.

Generated secrets are pulumi-random passwords: created once per stack (the resource name is the variable's
name, with no keepers), so releases and updates keep them; removing a name from `backend.generatedSecrets`
deletes its value for good. Every value reaches resources as one secret Output: encrypted in the state,
`[secret]` in previews.
"""

from __future__ import annotations

import pulumi
import pulumi_random as random

from . import contract
from .settings import Settings

GENERATED_LENGTH = 64   # characters of [A-Za-z0-9-_]: about 380 bits, and safe in any shell or .env file


class AppSecrets(pulumi.ComponentResource):
    generated: dict[str, random.RandomPassword]

    def __init__(self, name: str, settings: Settings, opts: pulumi.ResourceOptions | None = None):
        super().__init__("webstack:components:AppSecrets", name, None, opts)
        self._settings = settings
        self.generated = {
            variable: random.RandomPassword(f"{name}-{variable}", length=GENERATED_LENGTH, special=True,
                                            override_special="-_", opts=pulumi.ResourceOptions(parent=self))
            for variable in settings.backend.generatedSecrets}
        self.register_outputs({"generated": sorted(self.generated)})

    def plain(self) -> dict[str, str]:
        """The variables that are not secret values, in the order the containers get them."""
        settings, backend = self._settings, self._settings.backend
        return {"PORT": str(backend.port), "PGHOST": contract.SOCKET_DIR, "PGDATABASE": settings.database.name,
                "PGUSER": settings.database.user, **dict(sorted(backend.env.items()))}

    def environment(self) -> pulumi.Output[dict[str, str]]:
        """Every variable of the backend (and its release command), as a secret Output when any value is one.

        `backend.env` is secret too when it was set with --secret (the whole `backend` object is then)."""
        backend = self._settings.backend
        secret_values = {k: v.get_secret_value() for k, v in sorted(backend.secrets.items())}
        generated = {k: pw.result for k, pw in sorted(self.generated.items())}
        values = pulumi.Output.all(**generated) if generated else pulumi.Output.from_input({})
        merged = values.apply(lambda made: {**self.plain(), **secret_values, **made})
        if secret_values or generated or "backend" in self._settings.secretKeys:
            return pulumi.Output.secret(merged)
        return merged

    def envs(self) -> pulumi.Output[list[str]]:
        """`NAME=value` strings for docker.Container.envs."""
        return self.environment().apply(lambda env: [f"{k}={v}" for k, v in env.items()])
