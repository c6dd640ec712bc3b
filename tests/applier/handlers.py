"""The table of resource types the applier carries out, one handler each (see schema.py for their fields)."""

from __future__ import annotations

from .commands import CopyToRemoteHandler, LocalCommandHandler, RemoteCommandHandler
from .containers import ContainerHandler
from .docker_objects import (DockerProviderHandler, ImageHandler, NetworkHandler, RemoteImageHandler,
                             VolumeHandler)
from .dynamic import DynamicHandler
from .handler import Handler
from .random_password import RandomPasswordHandler


def handlers_for_run(config: dict, project: str) -> dict[str, Handler]:
    """Fresh handlers for one run (the dynamic handler configures providers with this run's config)."""
    return {
        "pulumi:providers:docker": DockerProviderHandler(),
        "docker:index/container:Container": ContainerHandler(),
        "docker:index/image:Image": ImageHandler(),
        "docker:index/remoteImage:RemoteImage": RemoteImageHandler(),
        "docker:index/volume:Volume": VolumeHandler(),
        "docker:index/network:Network": NetworkHandler(),
        "command:local:Command": LocalCommandHandler(),
        "command:remote:Command": RemoteCommandHandler(),
        "command:remote:CopyToRemote": CopyToRemoteHandler(),
        "random:index/randomPassword:RandomPassword": RandomPasswordHandler(),
        "pulumi-python:dynamic:Resource": DynamicHandler(config, project),
    }
