"""Resource options of a release's containers (the backend's and the web's), live or kept warm."""

from __future__ import annotations

from typing import Sequence

import pulumi


def release_container_options(parent: pulumi.Resource, inputs: dict, standby: bool,
                              depends_on: Sequence[pulumi.Resource] = ()) -> pulumi.ResourceOptions:
    """Options of a release's containers (backend and web).

    A generation's containers are never updated in place: a change is a new generation (new names). A container
    kept warm (standby) is declared with every input ignored, so it stays exactly as it runs. Should one still need
    a replacement (its release is rolled back to with inputs it was not created with), it is deleted first: a
    container that takes the same name cannot be created beside it, and it serves nothing then.
    """
    ignored = [to_camel(key) for key in inputs] if standby else ["envs"]
    return pulumi.ResourceOptions(parent=parent, depends_on=list(depends_on), ignore_changes=ignored,
                                  delete_before_replace=True)


def to_camel(name: str) -> str:
    """An input's name as the engine knows it (network_advanced -> networksAdvanced)."""
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
