"""The four images of containers/, built from the offline base and run hardened exactly as the program runs them
(read-only root, tmpfs /tmp, every capability dropped, no-new-privileges, numeric user:group, group_adds).

Yardsticks: /work/shared/SECURITY_NOTES.md sections 1-4 (CIS Docker, Mozilla TLS, OWASP headers, PostgreSQL).
Tests that change the shared stack (stopping the database or the backends) put it back before they return.
"""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import re
import shutil
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from components import contract
from components.rendering import MOZILLA_INTERMEDIATE_CIPHERS, HSTS, edge_bundle, render_edge_site, security_headers
from components.settings_loader import load_settings
from tests.live.conftest import BASE_IMAGE, IMAGES, PROJECT_DIR, build_image, docker

pytestmark = pytest.mark.live

TMPFS = "/tmp:rw,noexec,nosuid,size=64m"      # as components.hardening
HARDENED = ["--read-only", "--tmpfs", TMPFS, "--cap-drop", "ALL", "--security-opt", "no-new-privileges:true"]
IMAGE_USERS = {"db": contract.POSTGRES_UID, "backend": contract.BACKEND_UID, "web": contract.NGINX_UID,
               "edge": contract.NGINX_UID}
MIGRATIONS = sorted((PROJECT_DIR / "containers/backend/migrations").glob("*.sql"))


# --- helpers ------------------------------------------------------------------------------------------------

def wait_until(predicate, timeout: float, message: str, interval: float = 0.25):
    """Poll predicate until it returns a truthy value (returned) or the deadline passes (AssertionError)."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, http.client.HTTPException, AssertionError) as exc:
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s: {message}"
                                 + (f" (last error: {last_error})" if last_error else ""))
        time.sleep(interval)


@dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self):
        return json.loads(self.body)


def request(port: int, path: str, method: str = "GET", body: dict | None = None, tls: bool = False,
            headers: dict | None = None) -> Response:
    """One HTTP request to 127.0.0.1:port with Host: localhost (the rendered server_name)."""
    if tls:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE   # the test's own self-signed cert
        connection = http.client.HTTPSConnection("127.0.0.1", port, timeout=15, context=context)
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
    all_headers = {"Host": "localhost", **(headers or {})}
    payload = None
    if body is not None:
        payload = json.dumps(body).encode()
        all_headers["Content-Type"] = "application/json"
    try:
        connection.request(method, path, body=payload, headers=all_headers)
        response = connection.getresponse()
        return Response(response.status, response.msg, response.read())
    finally:
        connection.close()


def status_of(port: int, path: str, **kwargs) -> int:
    try:
        return request(port, path, **kwargs).status
    except (OSError, http.client.HTTPException):
        return 0


def inspect(name: str) -> dict:
    return json.loads(docker("inspect", name).stdout)[0]


def host_port(container: str, port: int) -> int:
    mapping = docker("port", container, f"{port}/tcp").stdout.split()[0]   # "127.0.0.1:49153"
    return int(mapping.rsplit(":", 1)[1])


def logs(container: str) -> str:
    result = docker("logs", container, check=False)
    return result.stdout + result.stderr


def health(container: str) -> str:
    state = inspect(container)["State"]
    if not state["Running"]:
        raise AssertionError(f"{container} is not running (exit {state['ExitCode']}):\n{logs(container)[-3000:]}")
    return state.get("Health", {}).get("Status", "none")


def wait_healthy(container: str, timeout: float = 90) -> None:
    wait_until(lambda: health(container) == "healthy", timeout, f"{container} becomes healthy")


def run_container(name: str, image: str, user: int, *options: str, group_add: bool = False) -> None:
    """docker run -d, hardened and with user uid:gid as components/hardening.py sets them."""
    extra = ["--group-add", str(contract.DBSOCK_GID)] if group_add else []
    docker("run", "-d", "--name", name, *HARDENED, "--user", f"{user}:{user}", *extra, *options, image)


def psql(container: str, sql: str, user: str = str(contract.BACKEND_UID), role: str = "app", db: str = "appdb",
         env: dict | None = None) -> subprocess.CompletedProcess:
    env_args = [arg for k, v in (env or {}).items() for arg in ("-e", f"{k}={v}")]
    return docker("exec", "-u", user, *env_args, container, "psql", "-h", contract.SOCKET_DIR, "-U", role,
                  "-d", db, "-XAtc", sql, check=False)


def settings_for(tls: bool):
    values = {"release": "t1", **({"tls": {"mode": "self-signed"}} if tls else {})}
    return load_settings(values, set(), "test", PROJECT_DIR)


def self_signed_files() -> dict[str, str]:
    """An RSA-2048 certificate for localhost valid 90 days (Mozilla intermediate), as the bundle's tls/ files."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=90))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    return {"tls/fullchain.pem": cert.public_bytes(serialization.Encoding.PEM).decode(),
            "tls/privkey.pem": key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption()).decode()}


def assert_security_headers(response: Response, tls: bool, extra: dict | None = None) -> None:
    """Each expected header exactly once with the exact value; HSTS only with TLS; no version in Server."""
    for name, value in {**security_headers(tls), **(extra or {})}.items():
        assert response.headers.get_all(name) == [value], f"{name} on a {response.status}"
    if not tls:
        assert response.headers.get_all("Strict-Transport-Security") is None
    assert not re.search(r"nginx/\d", response.headers.get("Server", ""))
    assert response.headers.get_all("X-Powered-By") is None


# --- fixtures -----------------------------------------------------------------------------------------------

@dataclass
class Stack:
    network: str
    db: str
    db_socket_volume: str
    backends: list[str]
    web: str
    edge: str
    backend_ports: list[int]
    web_port: int
    edge_http: int
    edge_https: int
    tls_files: dict[str, str]

    def bundle(self, tls: bool, backends: list[str] | None = None) -> str:
        site = render_edge_site(settings_for(tls), backends or self.backends, [self.web])
        return edge_bundle({"site.conf": site, **(self.tls_files if tls else {})})

    def apply(self, bundle: str):
        return docker("exec", "-i", self.edge, contract.EDGE_APPLY_COMMAND, input=bundle, check=False)

    def apply_variant(self, tls: bool) -> None:
        result = self.apply(self.bundle(tls))
        assert result.returncode == 0, result.stdout + result.stderr
        assert "edge: configuration applied" in result.stdout
        check = docker("exec", self.edge, "nginx", "-t", check=False)
        assert check.returncode == 0, check.stderr

    def backends_ready(self) -> bool:
        return all(status_of(port, "/readiness") == 200 for port in self.backend_ports)


@pytest.fixture(scope="module")
def stack(webstack_images, wst_resources) -> Stack:
    """db, two backends started together (before the db is even up), web and edge on one user network."""
    res, tags = wst_resources, webstack_images.tags
    network = res.network("net")
    net = ["--network", network]
    db, data, sock = res.container("db"), res.volume("pgdata"), res.volume("pgsocket")
    run_container(db, tags["db"], contract.POSTGRES_UID, *net, "-e", "WEBSTACK_DB_USER=app",
                  "-e", "WEBSTACK_DB_NAME=appdb", "-v", f"{data}:{contract.PGDATA}",
                  "-v", f"{sock}:{contract.SOCKET_DIR}", "--stop-signal", "SIGINT", group_add=True)
    backends = [res.container("backend-a"), res.container("backend-b")]
    for name in backends:
        run_container(name, tags["backend"], contract.BACKEND_UID, *net, "-e", "PORT=8000",
                      "-e", f"PGHOST={contract.SOCKET_DIR}", "-e", "PGDATABASE=appdb", "-e", "PGUSER=app",
                      "-v", f"{sock}:{contract.SOCKET_DIR}", "-p", "127.0.0.1::8000", group_add=True)
    web = res.container("web")
    run_container(web, tags["web"], contract.NGINX_UID, *net, "-p", f"127.0.0.1::{contract.WEB_PORT}")
    edge, edge_config = res.container("edge"), res.volume("edgecfg")
    run_container(edge, tags["edge"], contract.NGINX_UID, *net, "-v", f"{edge_config}:{contract.EDGE_CONFIG_DIR}",
                  "-p", f"127.0.0.1::{contract.EDGE_HTTP_PORT}", "-p", f"127.0.0.1::{contract.EDGE_HTTPS_PORT}")
    result = Stack(network, db, sock, backends, web, edge,
                   backend_ports=[host_port(b, 8000) for b in backends], web_port=host_port(web, contract.WEB_PORT),
                   edge_http=host_port(edge, contract.EDGE_HTTP_PORT),
                   edge_https=host_port(edge, contract.EDGE_HTTPS_PORT), tls_files=self_signed_files())
    for name in [db, *backends, web, edge]:
        wait_healthy(name)
    wait_until(result.backends_ready, 60, "both backends report /readiness 200")
    return result


# --- images -------------------------------------------------------------------------------------------------

def test_images_build_from_the_offline_base_with_user_healthcheck_and_no_add(webstack_images):
    base_layer = inspect(BASE_IMAGE)["RootFS"]["Layers"][0]
    for name in IMAGES:
        image = inspect(webstack_images.tags[name])
        assert image["RootFS"]["Layers"][0] == base_layer, f"{name} does not start from {BASE_IMAGE}"
        assert image["Config"]["User"] == str(IMAGE_USERS[name]), name              # CIS 4.1, contract uid
        assert image["Config"]["Healthcheck"]["Test"][0] in ("CMD", "CMD-SHELL"), name   # CIS 4.6
        history = docker("history", "--no-trunc", "--format", "{{.CreatedBy}}", webstack_images.tags[name]).stdout
        assert not re.search(r"#\(nop\)\s+ADD\b", history), f"{name} uses ADD"                   # CIS 4.9


def test_images_agree_with_the_contract(webstack_images, wst_resources):
    def in_image(name: str, script: str) -> str:
        return docker("run", "--rm", "--name", wst_resources.container(f"probe-{name}"), *HARDENED,
                      "--entrypoint", "sh", webstack_images.tags[name], "-c", script).stdout.strip()

    db_view = in_image("db", "getent passwd 999 1001 | cut -d: -f1,3,4; getent group dbsock | cut -d: -f3,4")
    assert db_view.splitlines() == ["postgres:999:999", "backend:1001:1001", "1500:postgres,backend"]
    assert in_image("backend", "id backend") == "uid=1001(backend) gid=1001(backend) groups=1001(backend),1500(dbsock)"
    for name in ("web", "edge"):
        assert in_image(name, "getent passwd 101 | cut -d: -f1,3,4") == "nginx:101:101"
    assert in_image("edge", f"test -x {contract.EDGE_APPLY_COMMAND} && stat -c '%u %a' {contract.EDGE_CONFIG_DIR}"
                    f" {contract.EDGE_CONFIG_DIR}/live/site.conf") == "101 750\n101 640"
    db_image = inspect(webstack_images.tags["db"])["Config"]
    assert set(db_image["Volumes"]) == {contract.PGDATA, contract.SOCKET_DIR}
    assert db_image["StopSignal"] == "SIGINT"
    edge_image = inspect(webstack_images.tags["edge"])["Config"]
    assert set(edge_image["Volumes"]) == {contract.EDGE_CONFIG_DIR}
    assert set(edge_image["ExposedPorts"]) == {f"{contract.EDGE_HTTP_PORT}/tcp", f"{contract.EDGE_HTTPS_PORT}/tcp"}


def test_app_code_change_rebuilds_from_the_cached_apt_layer_quickly(webstack_images, wst_resources, tmp_path):
    context = tmp_path / "backend"
    shutil.copytree(PROJECT_DIR / "containers/backend", context)
    with (context / "app.py").open("a") as app:
        app.write(f"\n# cache test {time.time_ns()}\n")
    tag = f"webstack-test-backend:cache-{wst_resources.run}"
    wst_resources.images.append(tag)
    output, seconds = build_image("backend", tag, context)
    steps = re.split(r"^Step \d+/\d+ : ", output, flags=re.M)[1:]
    apt_steps = [s for s in steps if s.startswith("RUN apt-get")]
    assert len(apt_steps) == 1 and "Using cache" in apt_steps[0], output
    code_step = next(s for s in steps if s.startswith("COPY gunicorn.conf.py app.py"))
    assert "Using cache" not in code_step, "the changed app code was not copied again"
    assert seconds < 30, f"rebuild after an app-code change took {seconds:.1f} s"


# --- database -----------------------------------------------------------------------------------------------

def test_db_refuses_to_start_without_valid_names(webstack_images, wst_resources):
    image = webstack_images.tags["db"]
    for suffix, env, expected in (("noenv", [], "WEBSTACK_DB_USER is not set"),
                                  ("badname", ["-e", "WEBSTACK_DB_USER=a;drop", "-e", "WEBSTACK_DB_NAME=appdb"],
                                   "is not a lower-case SQL identifier")):
        result = docker("run", "--rm", "--name", wst_resources.container(f"db-{suffix}"), *HARDENED,
                        "--user", "999:999", *env, image, check=False, timeout=60)
        assert result.returncode != 0 and expected in result.stderr, result.stderr


def test_two_backends_started_together_apply_each_migration_once(stack):
    rows = psql(stack.db, "select version, name from schema_migrations order by version")
    assert rows.returncode == 0, rows.stderr
    assert rows.stdout.splitlines() == [f"{int(p.name[:4])}|{p.stem}" for p in MIGRATIONS]
    backend_logs = "".join(logs(b) for b in stack.backends)
    assert {p.stem: backend_logs.count(f"migration {p.stem} applied") for p in MIGRATIONS} == {p.stem: 1 for p in MIGRATIONS}
    assert stack.backends_ready()


def test_db_socket_login_as_the_backend_uid_needs_no_password(stack):
    for container in (stack.db, stack.backends[0]):
        if container == stack.db:
            result = psql(container, "select current_user")
        else:   # the backend image has no psql: log in with its own psycopg2, as the app does
            result = docker("exec", container, "python3", "-c",
                            "import psycopg2; c = psycopg2.connect(''); cur = c.cursor();"
                            "cur.execute('select current_user'); print(cur.fetchone()[0])", check=False)
        assert (result.returncode, result.stdout.strip()) == (0, "app"), result.stderr


def test_db_peer_auth_rejects_another_uid_even_with_a_password(stack, webstack_images, wst_resources):
    other = psql(stack.db, "select 1", user=f"1002:{contract.DBSOCK_GID}", env={"PGPASSWORD": "x"})
    assert other.returncode != 0 and 'Peer authentication failed for user "app"' in other.stderr
    # Without the dbsock group the socket cannot be reached at all. `docker exec` would inherit the db
    # container's --group-add, so this client is a container of its own with only the socket volume.
    no_group = docker("run", "--rm", "--name", wst_resources.container("no-group"), *HARDENED, "--user", "1002:1002",
                      "-v", f"{stack.db_socket_volume}:{contract.SOCKET_DIR}", "--entrypoint", "psql",
                      webstack_images.tags["db"], "-h", contract.SOCKET_DIR, "-U", "app", "-d", "appdb", "-c", "select 1",
                      check=False)
    assert no_group.returncode != 0 and "Permission denied" in no_group.stderr, no_group.stderr


def test_db_has_no_tcp_listener(stack):
    tables = docker("exec", stack.db, "cat", "/proc/net/tcp", "/proc/net/tcp6").stdout
    listening = [line.split()[1] for line in tables.splitlines()[1:] if len(line.split()) > 3 and line.split()[3] == "0A"]
    assert not [addr for addr in listening if addr.endswith(":1538")], listening    # 0x1538 = 5432
    assert psql(stack.db, "show listen_addresses").stdout.strip() == ""
    tcp = docker("exec", "-u", "1001", stack.db, "psql", "-h", "127.0.0.1", "-U", "app", "-d", "appdb", "-c", "select 1",
                 check=False)
    assert tcp.returncode != 0 and "Connection refused" in tcp.stderr


def test_db_hba_and_ident_rules_are_exactly_the_rendered_ones(stack):
    hba = psql(stack.db, "select type, database, user_name, address, auth_method, options, error "
                         "from pg_hba_file_rules order by line_number", user="999", role="postgres", db="postgres")
    assert hba.stdout.splitlines() == [
        "local|{all}|{postgres}||peer||",
        "local|{appdb}|{app}||peer|{map=webstack}|",
        "local|{all}|{app}||peer|{map=webstack-restore}|",
        "host|{all}|{all}|all|reject||",
    ], hba.stderr
    ident = psql(stack.db, "select map_name, sys_name, pg_username, error from pg_ident_file_mappings",
                 user="999", role="postgres", db="postgres")
    assert ident.stdout.splitlines() == ["webstack|backend|app|", "webstack-restore|postgres|app|"]


def test_db_socket_is_mode_770_group_dbsock_in_a_2750_directory(stack):
    socket_file = f"{contract.SOCKET_DIR}/.s.PGSQL.5432"
    assert docker("exec", stack.db, "stat", "-c", "%a %U %G", socket_file).stdout.strip() == "770 postgres dbsock"
    assert docker("exec", stack.db, "stat", "-c", "%a %G", contract.SOCKET_DIR).stdout.strip() == "2750 dbsock"


# --- backend ------------------------------------------------------------------------------------------------

def test_backend_health_endpoints_with_the_db_up(stack):
    port = stack.backend_ports[0]
    for path, expected in (("/health", {"status": "ok"}), ("/health/db", {"status": "ok"}),
                           ("/readiness", {"status": "ready"})):
        response = request(port, path)
        assert (response.status, response.json()) == (200, expected), path
        assert response.headers["Content-Type"] == "application/json"


def test_backend_stores_notes_and_rejects_bad_input(stack):
    text = f"note {time.time_ns()}"
    created = request(stack.backend_ports[0], "/notes", "POST", {"text": text})
    assert created.status == 201 and created.json()["text"] == text
    listed = request(stack.backend_ports[1], "/notes").json()    # the other backend reads it back
    assert listed[0] == created.json()
    assert all(a["id"] > b["id"] for a, b in zip(listed, listed[1:])), "newest first"
    for bad in ({"text": ""}, {"text": "x" * 1001}, {"text": 5}, {"nope": "x"}, ["text"]):
        assert request(stack.backend_ports[0], "/notes", "POST", bad).status == 400, bad


def test_backend_failed_migration_keeps_readiness_503_and_rolls_back(stack, wst_resources, tmp_path):
    context = tmp_path / "backend"
    shutil.copytree(PROJECT_DIR / "containers/backend", context)
    # The first statement succeeds, the second fails: the file's own transaction must undo both.
    (context / "migrations/9999_broken.sql").write_text("CREATE TABLE broken_probe (id int);\nSELECT no_such_function();\n")
    tag = f"webstack-test-backend:broken-{wst_resources.run}"
    wst_resources.images.append(tag)
    build_image("backend", tag, context)
    name = wst_resources.container("backend-broken")
    run_container(name, tag, contract.BACKEND_UID, "--network", stack.network, "-e", f"PGHOST={contract.SOCKET_DIR}",
                  "-e", "PGDATABASE=appdb", "-e", "PGUSER=app", "-v", f"{stack.db_socket_volume}:{contract.SOCKET_DIR}",
                  "-p", "127.0.0.1::8000", group_add=True)
    port = host_port(name, 8000)

    def failed_readiness():
        response = request(port, "/readiness")
        return response.status == 503 and "migration failed" in response.json()["reason"] and response

    response = wait_until(failed_readiness, 60, "/readiness reports the failed migration")
    assert response.json()["pending"] == ["9999_broken"]
    assert request(port, "/health").status == 200 and "no_such_function" in logs(name)
    assert psql(stack.db, "select to_regclass('broken_probe') is null").stdout.strip() == "t"
    assert psql(stack.db, "select count(*) from schema_migrations").stdout.strip() == str(len(MIGRATIONS))
    assert stack.backends_ready(), "the release without the broken file stays ready"
    docker("rm", "-f", name)


def test_backend_reports_a_stopped_db_then_recovers(stack):
    port = stack.backend_ports[0]
    docker("stop", stack.db)
    try:
        for path in ("/health/db", "/readiness"):
            response = request(port, path)
            assert response.status == 503 and "reason" in response.json(), path
        assert request(port, "/health").status == 200
    finally:
        docker("start", stack.db)
    wait_until(stack.backends_ready, 60, "backends ready again after the db restarted")


def test_db_stop_is_a_clean_shutdown_and_restart_keeps_data(stack):
    marker = f"kept {time.time_ns()}"
    assert request(stack.backend_ports[0], "/notes", "POST", {"text": marker}).status == 201
    docker("stop", stack.db)
    docker("start", stack.db)
    wait_healthy(stack.db)
    log = logs(stack.db)
    assert "not properly shut down" not in log and "database system was shut down at" in log
    assert log.count("running initdb") == 1, "a restart on existing data must not initialize again"
    assert marker in psql(stack.db, "select text from notes").stdout
    wait_until(stack.backends_ready, 60, "backends ready again after the db restarted")


# --- web ----------------------------------------------------------------------------------------------------

def test_web_serves_fingerprinted_assets_without_security_headers(stack):
    page = request(stack.web_port, "/")
    assert page.status == 200 and page.headers.get_all("Cache-Control") == ["no-cache"]
    html = page.body.decode()
    for element in ('id="db-status"', 'id="notes"', 'id="note-text"', 'id="note-add"'):
        assert element in html
    assert not re.search(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son\w+=", html), "inline script or style"
    assets = re.findall(r'"/((?:app|style)\.[0-9a-f]{12}\.(?:js|css))"', html)
    assert len(assets) == 2, html
    for asset in assets:
        response = request(stack.web_port, f"/{asset}")
        assert response.status == 200
        assert response.headers.get_all("Cache-Control") == ["public, max-age=31536000, immutable"]
    assert request(stack.web_port, "/healthz").status == 200
    assert page.headers.get("Content-Security-Policy") is None, "the edge adds security headers, not web"
    assert not re.search(r"nginx/\d", page.headers.get("Server", ""))


# --- edge ---------------------------------------------------------------------------------------------------

def test_edge_bootstrap_site_is_healthy_and_serves_nothing(stack):
    assert request(stack.edge_http, contract.EDGE_HEALTH_PATH).status == 200
    assert request(stack.edge_http, "/").status == 503


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_edge_applies_each_variant_with_exact_security_headers(stack, tls):
    stack.apply_variant(tls)
    port = stack.edge_https if tls else stack.edge_http
    page = request(port, "/", tls=tls)
    assert page.status == 200 and b'id="notes"' in page.body
    assert_security_headers(page, tls)
    asset = re.search(rb'"(/app\.[0-9a-f]{12}\.js)"', page.body).group(1).decode()
    static = request(port, asset, tls=tls, headers={"Accept-Encoding": "gzip"})
    assert static.status == 200 and static.headers["Content-Encoding"] == "gzip"
    assert static.headers.get_all("Cache-Control") == ["public, max-age=31536000, immutable"]
    assert_security_headers(static, tls)
    api = request(port, "/api/health", tls=tls)
    assert (api.status, api.json()) == (200, {"status": "ok"})
    assert_security_headers(api, tls, {"Cache-Control": "no-store, max-age=0"})
    assert request(port, "/api/notes", tls=tls).status == 200
    for missing in ("/api/no-such-endpoint", "/no-such-page"):
        not_found = request(port, missing, tls=tls)
        assert not_found.status == 404
        assert_security_headers(not_found, tls)
    plain = request(stack.edge_http, "/some/page?x=1")
    if tls:
        assert plain.status == 308
        assert plain.headers["Location"] == f"https://localhost:{settings_for(True).httpsPort}/some/page?x=1"
        assert request(stack.edge_http, contract.EDGE_HEALTH_PATH).status == 200   # the image's HEALTHCHECK
        assert page.headers["Strict-Transport-Security"] == HSTS
    else:
        assert plain.status == 404 and plain.headers.get("Location") is None


def test_edge_refuses_a_broken_config_and_keeps_serving(stack):
    stack.apply_variant(tls=False)
    before = docker("exec", stack.edge, "cat", f"{contract.EDGE_CONFIG_DIR}/live/site.conf").stdout
    broken = edge_bundle({"site.conf": "server { listen 8080; no_such_directive on; }\n"})
    result = stack.apply(broken)
    assert result.returncode != 0
    assert 'unknown directive "no_such_directive"' in result.stderr and "previous one is still serving" in result.stderr
    assert docker("exec", stack.edge, "cat", f"{contract.EDGE_CONFIG_DIR}/live/site.conf").stdout == before
    assert request(stack.edge_http, "/api/health").status == 200
    assert docker("exec", stack.edge, "nginx", "-t", check=False).returncode == 0
    garbage = stack.apply("this is not a bundle\n")
    assert garbage.returncode != 0 and request(stack.edge_http, "/api/health").status == 200


def tls_handshake(port: int, version: ssl.TLSVersion | None = None, ciphers: str | None = None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if version is not None:
        context.minimum_version = context.maximum_version = version
    if ciphers is not None:
        context.set_ciphers(ciphers)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.version(), tls.cipher()[0]


def test_edge_accepts_tls_1_2_and_1_3_with_mozilla_ciphers_only(stack):
    stack.apply_variant(tls=True)
    version, cipher = tls_handshake(stack.edge_https, ssl.TLSVersion.TLSv1_2)
    assert version == "TLSv1.2" and cipher in MOZILLA_INTERMEDIATE_CIPHERS.split(":")
    assert tls_handshake(stack.edge_https, ssl.TLSVersion.TLSv1_3)[0] == "TLSv1.3"
    with pytest.raises(ssl.SSLError) as refused:      # a CBC suite outside the list, offered alone
        tls_handshake(stack.edge_https, ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-AES128-SHA:@SECLEVEL=0")
    assert refused.value.reason == "SSLV3_ALERT_HANDSHAKE_FAILURE"


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")   # deprecated is the point
@pytest.mark.parametrize("version", ["TLSv1", "TLSv1_1"])
def test_edge_refuses_old_tls_with_a_server_alert(stack, version):
    if not getattr(ssl, f"HAS_{version}"):
        pytest.skip(f"this Python's OpenSSL cannot even offer {version}, so the server's refusal is untestable")
    stack.apply_variant(tls=True)
    # SECLEVEL=0 makes OpenSSL 3 offer the old protocol at all; the refusal must then come from the server.
    with pytest.raises(ssl.SSLError) as refused:
        tls_handshake(stack.edge_https, getattr(ssl.TLSVersion, version), "DEFAULT:@SECLEVEL=0")
    assert refused.value.reason == "TLSV1_ALERT_PROTOCOL_VERSION", refused.value


def assert_edge_error_page(response, title: str) -> None:
    """The edge's own page: no nginx banner, no upstream address, no path."""
    body = response.body.decode()
    assert f"<h1>{title}</h1>" in body, body
    assert "nginx" not in body.lower() and ":8000" not in body and "/api" not in body, body


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_a_missing_page_gets_the_edge_s_own_404(stack, tls):
    port = stack.edge_https if tls else stack.edge_http
    stack.apply_variant(tls)
    response = request(port, "/no/such/page.html", tls=tls)
    assert response.status == 404
    assert_edge_error_page(response, "Not found")
    assert_security_headers(response, tls, {"Cache-Control": "no-store, max-age=0"})


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_edge_gateway_errors_keep_security_headers(stack, tls):
    port = stack.edge_https if tls else stack.edge_http
    # A backend address that refuses connections (the web container: nothing listens on the backend port).
    refused = stack.apply(stack.bundle(tls, backends=[stack.web]))
    assert refused.returncode == 0, refused.stderr
    response = request(port, "/api/health", tls=tls)
    assert response.status == 502
    assert_security_headers(response, tls, {"Cache-Control": "no-store, max-age=0"})
    assert_edge_error_page(response, "Bad gateway")
    # Stopped backend containers: their addresses vanish from the network, so nothing refuses the connection
    # and nginx gives up after proxy_connect_timeout (5 s per server): a 504 rather than a 502.
    stack.apply_variant(tls)
    for backend in stack.backends:
        docker("stop", backend)
    try:
        response = request(port, "/api/health", tls=tls)
        assert response.status in (502, 504)
        assert_security_headers(response, tls, {"Cache-Control": "no-store, max-age=0"})
        assert_edge_error_page(response, "Bad gateway" if response.status == 502 else "Gateway timeout")
    finally:
        for backend in stack.backends:
            docker("start", backend)
        # Published host ports are chosen anew when a container starts again.
        stack.backend_ports = [host_port(b, 8000) for b in stack.backends]
    # Restarted containers may get new addresses, which nginx resolves when it loads its configuration.
    wait_until(stack.backends_ready, 60, "backends ready after restart")
    stack.apply_variant(tls)
    wait_until(lambda: status_of(port, "/api/readiness", tls=tls) == 200, 30, "the edge reaches the backends again")


# --- every container ----------------------------------------------------------------------------------------

def test_every_container_runs_hardened_and_healthy(stack):
    for name in (stack.db, *stack.backends, stack.web, stack.edge):
        info = inspect(name)
        config, host = info["Config"], info["HostConfig"]
        assert config["User"].split(":")[0] not in ("", "0", "root"), name                  # CIS 4.1
        assert host["ReadonlyRootfs"] is True, name                                          # 5.13
        assert host["CapDrop"] == ["ALL"] and not host["CapAdd"], name                       # 5.4
        assert "no-new-privileges:true" in host["SecurityOpt"], name                         # 5.26
        assert host["Privileged"] is False and host["NetworkMode"] == stack.network, name    # 5.5, 5.30
        for bindings in (host["PortBindings"] or {}).values():                               # 5.14
            assert all(b["HostIp"] == "127.0.0.1" for b in bindings), name
        wait_healthy(name)                                                                   # 5.27
