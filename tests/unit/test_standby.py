"""Warm standby (components/standby.py): which earlier generations keep running, and how the program declares them
so that the engine leaves them as they run, and a rollback to one of them only switches the edge."""

from __future__ import annotations

import pytest

from components import standby
from components.images import release_context_digest
from components.settings_loader import load_settings
from tests.program import ProgramRun, run_program
from tests.stack_config import PROJECT_DIR


def record(name: str, release: str | None = None, web: bool = True) -> dict:
    return {"release": release or name, "backend": f"{name}-b", "backendNames": [f"webstack-dev-backend-{name}-b-1"],
            "backendImage": "sha256:" + "b" * 64, "web": f"{name}-w" if web else None,
            "webName": f"webstack-dev-web-{name}-w" if web else None, "webImage": "sha256:" + "c" * 64}


def live(name: str) -> dict:
    return {"backend": f"{name}-b", "web": f"{name}-w"}


# --- which generations -------------------------------------------------------------------------------------------

def test_the_previous_live_generation_comes_first_then_the_previous_standby_ones():
    previous = {"live": record("r3"), "standby": [record("r2"), record("r1")]}
    assert standby.choose(previous, live("r4"), 2) == [record("r3"), record("r2")]
    assert standby.choose(previous, live("r4"), 3) == [record("r3"), record("r2"), record("r1")]


def test_a_rollback_to_a_standby_generation_makes_it_live_and_keeps_the_one_it_replaces():
    previous = {"live": record("r3"), "standby": [record("r2"), record("r1")]}
    assert standby.choose(previous, live("r1"), 2) == [record("r3"), record("r2")]


@pytest.mark.parametrize("previous", [None, {}, {"live": None}, {"live": {"release": "r1"}}, "text",
                                      {"live": {**record("r1"), "backendNames": [1]}}])
def test_nothing_or_malformed_is_nothing_to_keep(previous):
    assert standby.choose(previous, live("r2"), 2) == []


def test_none_are_kept_when_standby_is_0_and_none_twice():
    previous = {"live": record("r2"), "standby": [record("r2"), record("r1")]}
    assert standby.choose(previous, live("r3"), 0) == []
    assert standby.choose(previous, live("r3"), 3) == [record("r2"), record("r1")]


# --- the program --------------------------------------------------------------------------------------------------

def containers(run: ProgramRun, role: str) -> dict[str, object]:
    return {r.inputs["name"]: r for r in run.containers()[role]}


@pytest.fixture(scope="module")
def kept() -> ProgramRun:
    previous = {"generations": {"live": record("r2"), "standby": [record("r1"), record("r0")]}}
    return run_program("dev", {"webstack:standby": 2}, previous_outputs=previous)


def test_kept_generations_are_declared_again_as_they_run(kept):
    backends, webs = containers(kept, "backend"), containers(kept, "web")
    assert set(backends) >= {"webstack-dev-backend-r2-b-1", "webstack-dev-backend-r1-b-1"}
    assert "webstack-dev-backend-r0-b-1" not in backends           # beyond standby: 2, so deleted
    assert set(webs) >= {"webstack-dev-web-r2-w", "webstack-dev-web-r1-w"}
    component = kept.named("backend")
    for name in ("webstack-dev-backend-r2-b-1", "webstack-dev-backend-r1-b-1"):
        container = backends[name]
        assert container.name == name.replace("webstack-dev-backend-", "backend-")   # its logical name as created
        assert container.parent == component.urn
        assert container.inputs["image"] == "sha256:" + "b" * 64
        # Every input ignored: the engine keeps it exactly as it runs.
        assert {"image", "name", "labels", "mounts", "networksAdvanced", "memory", "envs"} <= set(container.ignore_changes)
    assert kept.outputs["generations"]["standby"] == [record("r2"), record("r1")]
    live_names = kept.outputs["containers"]["backend"]
    assert kept.outputs["generations"]["live"]["backendNames"] == live_names
    assert backends[live_names[0]].ignore_changes == ["envs"] and backends[live_names[0]].delete_before_replace


def test_the_gate_and_the_edge_know_only_the_live_generation(kept):
    gate = next(r for r in kept.resources if r.name.startswith("release-gate-") and r.custom)
    script = gate.inputs["create"]
    assert kept.outputs["containers"]["backend"][0] in script and "webstack-dev-backend-r2-b-1" not in script


def test_without_standby_the_program_reads_nothing_of_itself():
    run = run_program("dev", previous_outputs={"generations": {"live": record("r1"), "standby": []}})
    assert not run.of_type("pulumi:pulumi:StackReference")
    assert "webstack-dev-backend-r1-b-1" not in containers(run, "backend")
    assert run.outputs["generations"]["standby"] == []


def test_a_rollback_to_a_standby_release_declares_its_running_containers_as_live():
    built = run_program("dev", {"webstack:release": "r1", "webstack:standby": 1})
    r1 = built.outputs["generations"]["live"]
    after = run_program("dev", {"webstack:release": "r2", "webstack:standby": 1},
                        previous_outputs={"generations": built.outputs["generations"]})
    assert after.outputs["generations"]["standby"] == [r1]
    settings = load_settings({"release": "r1"}, set(), "dev", PROJECT_DIR)
    pinned = {"release": "r1", "backend": r1["backendImage"], "web": r1["webImage"],
              "backendContext": release_context_digest(settings, settings.backend),
              "webContext": release_context_digest(settings, settings.frontend)}
    rollback = run_program("dev", {"webstack:release": "r1", "webstack:standby": 1, "webstack:images": {"pinned": pinned}},
                           previous_outputs={"generations": after.outputs["generations"]})
    # The same generation as when r1 was built: the same containers, the same image; r2 is kept warm instead.
    assert rollback.outputs["generations"]["live"] == r1
    assert rollback.outputs["containers"]["backend"] == r1["backendNames"]
    assert rollback.outputs["generations"]["standby"] == [after.outputs["generations"]["live"]]
    live_container = containers(rollback, "backend")[r1["backendNames"][0]]
    assert live_container.inputs["image"] == r1["backendImage"] and live_container.ignore_changes == ["envs"]
