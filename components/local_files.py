"""Files the docker provider's `ssh` needs on the operator's machine (it cannot take them as values)."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, content: str) -> Path:
    """Write content readable by the current user only; rewrite only when it differs."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    if not path.exists() or path.read_text() != content:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(content)
    return path
