"""The applier's error types.

`ApplyFailed` is what tests catch: one failed `up()`/`destroy()`, carrying the operations already carried out
so a test can assert that, like Pulumi, a failure stops the run before any delete of undeclared resources.
"""

from __future__ import annotations


class ApplyFailed(Exception):
    """A run that did not complete: `message` says which resources failed and why."""

    def __init__(self, message: str, operations: list[tuple[str, str]]):
        super().__init__(message)
        self.message = message
        self.operations = operations


class ResourceError(Exception):
    """One resource's step failed; the message starts with the URN, as Pulumi's diagnostics do."""

    def __init__(self, urn: str, message: str):
        super().__init__(f"{urn}: {message}")
        self.urn = urn
        self.reason = message


class Unsupported(Exception):
    """The program declares something the applier does not carry out (a field, option, type or invoke).

    Raised instead of ignoring it: a test run that silently dropped a declared field would prove nothing.
    """
