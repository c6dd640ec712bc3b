"""A test-only Pulumi "applier": runs the real program under Pulumi's mocks and carries every declared
resource out for real on a Docker engine (and over SSH), converging on re-runs the way `pulumi up` would.

The Pulumi CLI and provider plugins cannot be installed here; this lets live tests deploy, update, roll back
and destroy real stacks from the real program. See deployment.py for the API.
"""

from .deployment import Deployment, UpResult
from .errors import ApplyFailed

__all__ = ["ApplyFailed", "Deployment", "UpResult"]
