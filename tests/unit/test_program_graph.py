"""The graph the real program declares for the dev and prod stacks, under Pulumi's mocks."""

from __future__ import annotations

import base64
import io
import os
import shlex
import subprocess
import tarfile

import pytest

from components import contract, rendering
from tests.program import AUTONAME_SUFFIX, ProgramRun, is_secret, run_program

CONTAINER = "docker:index/container:Container"
COMPONENTS = ["Database", "Backend", "Web", "Edge", "SocketVolume", "Networks", "Images", "RemoteHost",
              "Certificates", "Backups"]


def component_types(run: ProgramRun) -> set[str]:
    return {r.type.rsplit(":", 1)[1] for r in run.resources if r.type.startswith("webstack:components:")}


def only(run: ProgramRun, role: str):
    containers = run.containers()[role]
    assert len(containers) == 1
    return containers[0]


def edge_name(run: ProgramRun) -> str:
    """The edge has no name input: the engine autonames it (tests/program.py's mocks do the same)."""
    edge = only(run, "edge")
    assert "name" not in edge.inputs
    return f"{edge.name}-{AUTONAME_SUFFIX}"


def mount_sources(container) -> list[str]:
    return [m["source"] for m in container.inputs.get("mounts", [])]


def switch_bundle(run: ProgramRun) -> dict[str, str]:
    switch = next(r for r in run.resources if r.name == "edge-switch")
    with tarfile.open(fileobj=io.BytesIO(base64.b64decode(switch.inputs["stdin"]))) as tar:
        return {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_each_stack_declares_every_component(stack, request):
    run = request.getfixturevalue(stack)
    assert set(COMPONENTS) <= component_types(run)
    assert {"backend", "web", "edge", "database"} <= set(run.containers())
    assert len(run.of_type("docker:index/remoteImage:RemoteImage")) == 5   # backend, web, db, edge, backup
    assert len(run.of_type("docker:index/network:Network")) == 3


def gate(run: ProgramRun):
    return only_named(run, "release-gate-")


def only_named(run: ProgramRun, prefix: str):
    found = [r for r in run.resources if r.name.startswith(prefix) and r.custom]
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def test_prod_prepares_the_remote_host_over_ssh(prod):
    names = {r.name for r in prod.of_type("command:remote:Command")}
    assert {"host-bootstrap", "edge-switch", gate(prod).name} <= names
    # The preflight runs the operator's own ssh (its errors are the only ones precise enough), and the base-image
    # refresh reads (or sends) the host's base image with the same ssh; nothing else runs locally.
    assert {r.name for r in prod.of_type("command:local:Command")} == {"host-preflight", "base-image-refresh"}


def test_dev_runs_its_commands_on_the_local_engine(dev):
    assert {r.name for r in dev.of_type("command:local:Command")} == {
        "edge-switch", gate(dev).name, "images-backend-guard", "images-web-guard", "images-prune",
        "backups-pre-deploy", "pids-limits-update", "base-image-refresh"}
    assert not dev.of_type("command:remote:Command")


def test_database_volume_is_protected_and_retained(dev):
    volume = dev.named("database-data")
    assert volume.protect and volume.retain_on_delete


def test_no_other_volume_is_protected(dev):
    assert [r.name for r in dev.resources if r.protect] == ["database-data"]


def test_database_publishes_no_port(dev):
    assert not only(dev, "database").inputs.get("ports")


def test_only_the_edge_publishes_ports(prod):
    publishing = {role for role, regs in prod.containers().items() for r in regs if r.inputs.get("ports")}
    assert publishing == {"edge-ports"}   # the holder: the edges serve in its network namespace


def test_ports_are_published_on_the_configured_address(dev, prod):
    assert {p["ip"] for p in only(dev, "edge-ports").inputs["ports"]} == {"127.0.0.1"}
    assert {(p["internal"], p["external"]) for p in only(prod, "edge-ports").inputs["ports"]} == {(8080, 80),
                                                                                                  (8443, 443)}


def test_https_is_published_only_when_tls_is_on(plain_http):
    assert [p["internal"] for p in only(plain_http, "edge-ports").inputs["ports"]] == [contract.EDGE_HTTP_PORT]


def test_database_and_backend_share_the_socket_volume(dev):
    socket = dev.named("pgsocket-volume").inputs["name"]
    assert socket in mount_sources(only(dev, "database"))
    assert all(socket in mount_sources(b) for b in dev.containers()["backend"])
    assert all(m["target"] == contract.SOCKET_DIR for m in only(dev, "database").inputs["mounts"]
               if m["source"] == socket)


@pytest.mark.parametrize("role", ["web", "edge"])
def test_frontend_never_mounts_the_database_socket(dev, role):
    socket = dev.named("pgsocket-volume").inputs["name"]
    assert socket not in mount_sources(only(dev, role))
    assert contract.SOCKET_DIR not in [m["target"] for m in only(dev, role).inputs.get("mounts", [])]


def test_socket_volume_refuses_any_other_consumer():
    from components.socket_volume import SocketVolume
    with pytest.raises(ValueError, match="Web may not mount"):
        SocketVolume.mount(object.__new__(SocketVolume), "Web")


def network_members(run: ProgramRun, network_name: str) -> set[str]:
    name = run.named(network_name).inputs["name"]
    return {role for role, regs in run.containers().items() for r in regs
            if name in [n["name"] for n in r.inputs.get("networksAdvanced", [])]}


def test_data_network_is_internal_and_holds_only_database_and_backend(dev):
    assert dev.named("networks-data").inputs["internal"] is True
    assert network_members(dev, "networks-data") == {"database", "backend"}


def test_app_network_joins_edge_backend_and_web_only(dev):
    assert dev.named("networks-app").inputs["internal"] is True
    assert network_members(dev, "networks-app") == {"edge-ports", "backend", "web"}


def test_only_the_edge_is_on_the_public_network(dev):
    assert network_members(dev, "networks-public") == {"edge-ports"}


def test_the_edge_serves_in_the_holders_network_namespace_and_is_replaced_create_first(dev):
    holder, edge = only(dev, "edge-ports"), only(dev, "edge")
    assert edge.inputs["networkMode"] == f"container:{holder.name}-id"   # the id: Docker reports it back so
    assert not edge.inputs.get("ports") and not edge.inputs.get("networksAdvanced")
    assert edge.delete_before_replace is False            # the new edge starts beside the old one
    assert edge.name == "webstack-dev-edge"               # autonamed webstack-dev-edge-<random> by the engine
    # The holder: fixed name, only `sleep`, never replaced by a new edge image; queued connections of a closing
    # listener move to the others (tcp_migrate_req).
    assert holder.inputs["name"] == "webstack-dev-edge-ports" and holder.inputs["command"] == ["sleep", "infinity"]
    assert holder.ignore_changes == ["image", "healthcheck"]
    assert holder.inputs["sysctls"] == {"net.ipv4.tcp_migrate_req": "1"}
    assert holder.inputs["user"] == "65534:65534" and holder.inputs["readOnly"] is True


def test_the_edge_keeps_its_tmp_and_memory_until_uploads_need_more(dev):
    """Request bodies wait in the edge's /tmp (a tmpfs, counted in its memory) for the backend: three of
    edge.maxBodyMb fit, and the memory limit grows with it. The default is the edge as it was."""
    edge = only(dev, "edge")
    assert (edge.inputs["memory"], edge.inputs["tmpfs"]) == (128, {"/tmp": "rw,noexec,nosuid,size=64m"})
    uploads = only(run_program("dev", overrides={"webstack:edge": {"maxBodyMb": 100}}), "edge")
    assert (uploads.inputs["memory"], uploads.inputs["tmpfs"]) == (364, {"/tmp": "rw,noexec,nosuid,size=300m"})
    assert uploads.inputs["memorySwap"] == 364


def test_the_switch_retires_the_other_edges_of_the_stack_only_after_the_release_serves(dev):
    script = dev.named("edge-switch").inputs["create"]
    serving = script.split("case $rc in")[1].split(";;")[0]
    assert serving.index("serves through the edge") < serving.index("retire_other_edges")
    retire = script.split("retire_other_edges() {")[1].split("\n}")[0]
    assert "--filter label=webstack.stack=dev --filter label=webstack.role=edge" in retire
    assert "--filter name=^webstack-dev-edge-" in retire and 'grep -vxF "$edge"' in retire
    assert "docker stop -t 30 $others" in retire   # graceful: the image's STOPSIGNAL is SIGQUIT


def test_a_new_release_is_a_new_backend_resource(dev, dev_next_release):
    first = {r.name for r in dev.containers()["backend"]}
    second = {r.name for r in dev_next_release.containers()["backend"]}
    assert first and second and not first & second
    first_names = {r.inputs["name"] for r in dev.containers()["backend"]}
    assert not first_names & {r.inputs["name"] for r in dev_next_release.containers()["backend"]}


def test_a_new_release_is_a_new_web_resource(dev, dev_next_release):
    assert only(dev, "web").name != only(dev_next_release, "web").name


def test_a_backend_setting_change_is_a_new_generation_too(dev):
    from tests.program import run_program
    changed = run_program("dev", overrides={"webstack:backend": {"env": {"FEATURE_X": "on"}}})
    assert only(changed, "backend").name != only(dev, "backend").name
    assert "FEATURE_X=on" in only(changed, "backend").inputs["envs"]


def test_the_same_settings_give_the_same_names(dev):
    from tests.program import run_program
    again = run_program("dev")
    assert sorted(r.urn for r in again.resources) == sorted(r.urn for r in dev.resources)


@pytest.mark.parametrize("role", ["edge", "database"])
def test_long_lived_containers_do_not_change_with_the_release(dev, dev_next_release, role):
    before, after = only(dev, role), only(dev_next_release, role)
    assert (before.name, before.inputs) == (after.name, after.inputs)


def test_release_images_are_tagged_with_the_release(dev_next_release):
    for role in ("backend", "web"):
        assert dev_next_release.named(f"images-{role}").inputs["name"].endswith(":dev-2")


def test_edge_and_database_images_are_tagged_by_content(dev, dev_next_release):
    for role in ("edge", "db"):
        tag = dev.named(f"images-{role}").inputs["name"]
        assert tag == dev_next_release.named(f"images-{role}").inputs["name"]
        assert "dev-1" not in tag


def test_images_build_from_the_configured_base_image(dev):
    for image in dev.of_type("docker:index/remoteImage:RemoteImage"):
        assert image.inputs["build"]["buildArgs"]["BASE_IMAGE"] == "debian:bookworm-slim"
        assert image.inputs["build"]["useLegacyBuilder"] is True   # no buildx on the target's engine
        assert image.inputs["keepLocally"] is True                 # rollback reuses a release's image


def test_edge_switches_only_after_the_release_gate_passed(dev):
    switch, check = dev.named("edge-switch"), gate(dev)
    assert check.urn in switch.dependencies
    script = check.inputs["create"]
    for container in dev.containers()["backend"] + dev.containers()["web"]:
        assert container.urn in check.dependencies and container.inputs["name"] in script
    for container in dev.containers()["web"]:
        assert container.inputs["healthcheck"]["tests"]


def test_edge_switch_routes_to_this_release_containers(dev):
    site = switch_bundle(dev)["site.conf"]
    for backend in dev.containers()["backend"]:
        assert f"server {backend.inputs['name']}:8000" in site
    assert f"server {only(dev, 'web').inputs['name']}:{contract.WEB_PORT}" in site


def test_edge_is_reconfigured_by_reload_inside_the_running_container_then_checked_through_it(dev):
    script = dev.named("edge-switch").inputs["create"]
    # One `docker exec` does the work inside the edge; its script is the host script's `inside` value.
    assert 'docker exec -i "$edge" sh -c "$inside"' in script
    assert f"edge={edge_name(dev)}" in script   # the name the engine gave the edge
    inside = shlex.split(script.split("\ninside=", 1)[1], comments=True)[0]
    assert f"| {contract.EDGE_APPLY_COMMAND} $1" in inside
    # TLS, the public name and both routes, answered by the edge itself: first through the canary (a refusal
    # removes it and switches nothing), then through the public server (a failure puts `prev` back).
    assert '-k --unix-socket "$1"' in inside and '"https://"localhost"$path"' in inside
    assert "for path in / /api/readiness" in inside
    canary, public = inside.split("apply --stage || exit 1\n")[1].split('apply "" || exit 1\n')
    assert f"checked {contract.EDGE_CANARY_SOCKET} " in canary and "rm -rf /etc/webstack/edge/stage" in canary
    assert "exit 3" in canary and "mv prev" not in canary
    assert f"checked {contract.EDGE_HTTPS_SOCKET} " in public and "mv prev live && nginx -s reload" in public


def test_backend_health_gate_probes_the_configured_path_from_the_edge(dev):
    backend, check = only(dev, "backend"), gate(dev)
    assert "healthcheck" not in backend.inputs   # nothing runs inside the image; its own HEALTHCHECK still may
    script = check.inputs["create"]
    assert f"http://{backend.inputs['name']}:8000/readiness" in script
    assert f"http://{only(dev, 'web').inputs['name']}:{contract.WEB_PORT}/healthz" in script
    assert f"docker exec {edge_name(dev)} sh -c" in script and "curl -fsS -o /dev/null --max-time 2 \"$url\"" in script
    assert only(dev, "edge").urn in check.dependencies   # the edge probes: it must exist first


def test_backend_replicas_become_containers_and_upstreams():
    from tests.program import run_program
    run = run_program("dev", overrides={"webstack:backend": {"replicas": 3}})
    names = [r.inputs["name"] for r in run.containers()["backend"]]
    assert len(set(names)) == 3
    site = switch_bundle(run)["site.conf"]
    assert all(f"server {name}:8000" in site for name in names)


def test_edge_receives_the_certificate_only_as_a_secret(dev):
    switch = dev.named("edge-switch")
    assert is_secret(switch.secret_inputs["stdin"])
    assert set(switch_bundle(dev)) == {"site.conf", "canary.site", "tls/fullchain.pem", "tls/privkey.pem"}


def test_plain_http_stack_sends_no_certificate(plain_http):
    assert set(switch_bundle(plain_http)) == {"site.conf", "canary.site"}
    assert "ssl_certificate" not in switch_bundle(plain_http)["site.conf"] + switch_bundle(plain_http)["canary.site"]


def test_prod_serves_the_provided_certificate(prod, prod_tls):
    bundle = switch_bundle(prod)
    assert bundle["tls/fullchain.pem"] == prod_tls["certificate"]
    assert is_secret(prod.named("edge-switch").secret_inputs["stdin"])


def test_backend_environment_holds_no_password(prod):
    for container in prod.of_type(CONTAINER):
        assert not [e for e in container.inputs.get("envs", []) if "PASSWORD" in e.upper()]


def test_database_has_a_grace_period_for_a_clean_shutdown(dev):
    database = only(dev, "database").inputs
    assert database["destroyGraceSeconds"] >= 30 and database["stopSignal"] == "SIGINT"


def test_stack_outputs_name_url_release_containers_and_volume(dev):
    assert dev.outputs["url"] == "https://localhost:8443"
    assert dev.outputs["release"] == "dev-1"
    # Every long-lived container: test_interruptions compares them with the engine's after an interrupted update.
    assert set(dev.outputs["containers"]) == {"database", "edge", "edgePorts", "backend", "web", "backup"}
    named = {r.inputs.get("name") for r in dev.of_type("docker:index/container:Container")} - {None}
    listed = {v for value in dev.outputs["containers"].values() for v in (value if isinstance(value, list) else [value])}
    assert named <= listed
    assert dev.outputs["dataVolume"] == "webstack-dev-pgdata"


def test_every_resource_has_a_webstack_component_parent(prod):
    components = {r.urn for r in prod.resources if r.type.startswith("webstack:components:")}
    for resource in prod.resources:
        if resource.type.startswith("webstack:components:"):
            assert resource.parent.endswith("pulumi:pulumi:Stack::webstack-prod")
        else:
            assert resource.parent in components, resource.name


def test_docker_resources_use_the_stack_provider(prod):
    for resource in prod.resources:
        if resource.type.startswith("docker:index/"):
            assert "pulumi:providers:docker::host-docker::" in resource.provider, resource.name


def test_labels_name_stack_role_and_release(dev):
    labels = {i["label"]: i["value"] for i in only(dev, "backend").inputs["labels"]}
    assert labels == {"webstack.stack": "dev", "webstack.role": "backend", "webstack.release": "dev-1"}


def test_backends_start_after_the_database(dev):
    database = only(dev, "database")
    assert all(database.urn in b.dependencies for b in dev.containers()["backend"])


def test_postgres_is_in_the_socket_group(dev):
    assert only(dev, "database").inputs["groupAdds"] == [str(contract.DBSOCK_GID)]
    assert all(b.inputs["groupAdds"] == [str(contract.DBSOCK_GID)] for b in dev.containers()["backend"])


def test_a_code_change_without_a_new_release_is_a_new_generation(tmp_path, dev):
    import shutil
    from tests.program import run_program
    from tests.stack_config import PROJECT_DIR
    context = tmp_path / "backend"
    shutil.copytree(PROJECT_DIR / "containers" / "backend", context)
    same = run_program("dev", overrides={"webstack:backend": {"context": str(context)}})
    (context / "app.py").write_text((context / "app.py").read_text() + "\n# changed\n")
    changed = run_program("dev", overrides={"webstack:backend": {"context": str(context)}})
    assert only(same, "backend").name != only(changed, "backend").name
    assert only(dev, "backend").name != only(same, "backend").name   # the context path is part of the spec


def test_a_release_image_is_guarded_and_labelled_and_pruned_once_the_release_is_healthy(dev):
    for role in ("backend", "web"):
        image, guard = dev.named(f"images-{role}"), dev.named(f"images-{role}-guard")
        assert guard.urn in image.dependencies
        labels = image.inputs["build"]["label"]
        assert labels["webstack.release"] == "dev-1" and labels["webstack.role"] == role
        assert labels["webstack.context"] in guard.inputs["create"]      # the guard compares this very digest
    # Beside the switch, not after it (it would add its time to every release): the new containers exist and hold
    # their images, and the previous release's containers still run, so nothing the edge may switch to is removed.
    prune = dev.named("images-prune")
    assert gate(dev).urn in prune.dependencies and dev.named("edge-switch").urn not in prune.dependencies


def test_a_pinned_rollback_runs_the_recorded_images_and_builds_nothing(dev):
    backend_id, web_id = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    pinned = run_program("dev", {"webstack:images": {"keep": 5, "pinned": {"release": "dev-1", "backend": backend_id,
                                                                           "web": web_id}}})
    assert not [r for r in pinned.of_type("docker:index/remoteImage:RemoteImage")
                if r.name in ("images-backend", "images-web")]
    assert {c.inputs["image"] for c in pinned.containers()["backend"]} == {backend_id}
    assert only(pinned, "web").inputs["image"] == web_id
    # A check that the images are still there comes first (it waits for nothing) and every container waits for it.
    check = pinned.named("images-pinned")
    assert check.dependencies == [] and backend_id in check.inputs["create"] and web_id in check.inputs["create"]
    for container in pinned.containers()["backend"] + pinned.containers()["web"]:
        assert check.urn in container.dependencies
    assert "images-pinned" not in {r.name for r in dev.resources}
    later = run_program("dev", {"webstack:release": "dev-2", "webstack:images": {
        "pinned": {"release": "dev-1", "backend": backend_id, "web": web_id}}})
    assert {r.name for r in later.of_type("docker:index/remoteImage:RemoteImage")} >= {"images-backend", "images-web"}


@pytest.mark.parametrize("missing", [[], ["sha256:" + "b" * 64]])
def test_the_pinned_images_check_names_the_images_that_are_gone(tmp_path, missing):
    ids = ["sha256:" + "a" * 64, "sha256:" + "b" * 64]
    script = rendering.render("host/image-pinned.sh.j2", release="r1", ids=ids)
    docker = tmp_path / "docker"      # a stand-in engine that holds every image but `missing`
    docker.write_text("#!/bin/sh\nfor image in $3 $4; do case \" $MISSING \" in *\" $image \"*) exit 1 ;; esac; done\n"
                      "exit 0\n")
    docker.chmod(0o755)
    result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30,
                            env={**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}", "MISSING": " ".join(missing)})
    assert result.returncode == (1 if missing else 0)
    if missing:
        assert f"the images pinned for release r1 are no longer on the target: {missing[0]}" in result.stderr
