"""random:index/randomPassword:RandomPassword: a fresh secret on create, kept in the state until an input
(length, keepers, character classes) changes, which replaces it, as pulumi-random does.

Characters come from `secrets` over the declared alphabet (not token_urlsafe alone) so that special=False,
overrideSpecial and the min* counts are honoured, not just the length.
"""

from __future__ import annotations

import secrets
import string

from . import schema
from .container_args import _int
from .handler import Ctx, Handler, merged

DEFAULT_SPECIAL = "!@#$%&*()-_=+[]{}<>:?"   # pulumi-random's default special set


class RandomPasswordHandler(Handler):
    fields = schema.RANDOM_PASSWORD

    def create(self, ctx: Ctx) -> tuple[str, dict]:
        i = ctx.inputs
        classes = {"upper": string.ascii_uppercase, "lower": string.ascii_lowercase,
                   "numeric": string.digits, "special": i.get("overrideSpecial", DEFAULT_SPECIAL)}
        if i.get("number") is False:
            i = {**i, "numeric": False}
        enabled = {k: v for k, v in classes.items() if i.get(k, True) and v}
        minimums = {k: _int(i.get("min" + k.capitalize(), 0)) for k in enabled}
        length = _int(i["length"])
        if sum(minimums.values()) > length or not enabled:
            raise ValueError("length is too short for the min* counts, or every character class is disabled")
        chars = [secrets.choice(enabled[k]) for k, n in minimums.items() for _ in range(n)]
        alphabet = "".join(enabled.values())
        chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
        secrets.SystemRandom().shuffle(chars)
        return "none", merged(i, result="".join(chars))
