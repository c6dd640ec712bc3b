"""A user mistake stops the program before any resource is declared, with the settings error alone."""

from __future__ import annotations

import pytest

from components.settings_loader import ConfigError
from tests.program import run_program


def test_prod_placeholders_are_refused_with_the_command_to_run():
    with pytest.raises(ConfigError) as error:
        run_program("prod")
    message = str(error.value)
    assert "webstack:target.hostKey:" in message and "ssh-keyscan" in message
    assert "webstack:tls.certificate:" in message


def test_bad_input_declares_nothing(monkeypatch):
    from tests import program
    recorded = []
    original = program.RecordingMonitor.RegisterResource
    monkeypatch.setattr(program.RecordingMonitor, "RegisterResource",
                        lambda self, request: recorded.append(request.type) or original(self, request))
    with pytest.raises(ConfigError, match="webstack:httpPort"):
        run_program("dev", overrides={"webstack:httpPort": "99999"})
    assert recorded == ["pulumi:pulumi:Stack"] or recorded == []
