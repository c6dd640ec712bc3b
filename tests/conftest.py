import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "live: needs a real Docker engine (and SSH); skipped with a reason outside CI")
