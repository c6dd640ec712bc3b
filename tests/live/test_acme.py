"""tls.mode acme for real: Debian's pebble as the ACME server, real HTTP-01 validation through the edge.

pebble listens on the Docker bridge's gateway address (the stack's ACME container reaches it as
host.docker.internal, trusting the test CA of pebble's own HTTPS certificate through tls.acmeServerCa) and
resolves every name to 127.0.0.1 with pebble-challtestsrv's DNS, so its validation requests reach the edge's
published HTTP port. Its certificates live CERT_SECONDS, so the ACME container's renewal at 2/3 of the lifetime
happens during the test, under load. One stack, `acmetest`, with the dev stack's settings otherwise.
"""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.live.bridge import default_bridge_gateway
from tests.live.engine import EngineFailed
from tests.live.loadgen import Load, stop_all
from tests.live.test_scenarios import LiveStack, deployed, free_port, health

pytestmark = pytest.mark.live
STACK = "acmetest"
DOMAIN = "acme.webstack.test"
BLOCKED = "blocked.webstack.test"       # in pebble's domainBlocklist: the server refuses it with its reason
CERT_SECONDS = 90                       # pebble's certificate lifetime: renewal is due after 60 s
EMAIL = "ops@webstack.test"


def docker(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120, check=check)


def wait_for(what: str, probe, seconds: float, every: float = 0.5):
    """Poll probe() until it returns something truthy; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: still not true after {seconds:.0f} s")
        time.sleep(every)


def make_test_ca(directory: Path, address: str) -> tuple[Path, Path, Path]:
    """A CA and pebble's HTTPS certificate for host.docker.internal and `address`: (ca, cert, key) files."""
    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.timezone.utc)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("webstack acmetest CA")).issuer_name(name("webstack acmetest CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name("host.docker.internal")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("host.docker.internal"),
                                                        x509.IPAddress(ipaddress.ip_address(address))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "pebble.pem", directory / "pebble.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


class Pebble:
    """pebble and its DNS (pebble-challtestsrv), started for the module and stopped by process id."""

    def __init__(self, directory: Path, http_port: int):
        for tool in ("pebble", "pebble-challtestsrv"):
            if subprocess.run(["which", tool], capture_output=True).returncode != 0:
                message = f"{tool} is missing: apt-get install pebble"
                if os.environ.get("CI"):
                    pytest.fail(message)
                pytest.skip(message)
        self.address = default_bridge_gateway()   # what host-gateway means inside a container
        self.ca, cert, key = make_test_ca(directory, self.address)
        self.port, self.management, dns = free_port(), free_port(), free_port()
        config = {"pebble": {
            "listenAddress": f"{self.address}:{self.port}", "managementListenAddress": f"127.0.0.1:{self.management}",
            "certificate": str(cert), "privateKey": str(key), "httpPort": http_port, "tlsPort": free_port(),
            "ocspResponderURL": "", "externalAccountBindingRequired": False,
            "domainBlocklist": [BLOCKED], "certificateValidityPeriod": CERT_SECONDS}}
        (directory / "pebble.json").write_text(json.dumps(config))
        env = {**os.environ, "PEBBLE_VA_NOSLEEP": "1", "PEBBLE_WFE_NONCEREJECT": "0", "PEBBLE_AUTHZREUSE": "0"}
        self.logs = directory / "pebble.log", directory / "challtestsrv.log"
        self.processes = [
            subprocess.Popen(["pebble-challtestsrv", "-defaultIPv4", "127.0.0.1", "-defaultIPv6", "",
                              "-dns01", f"127.0.0.1:{dns}", "-http01", "", "-https01", "", "-tlsalpn01", "",
                              "-management", f"127.0.0.1:{free_port()}"],
                             stdout=self.logs[1].open("w"), stderr=subprocess.STDOUT, start_new_session=True),
            subprocess.Popen(["pebble", "-config", str(directory / "pebble.json"), "-dnsserver", f"127.0.0.1:{dns}"],
                             stdout=self.logs[0].open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True),
        ]
        self.directory_url = f"https://host.docker.internal:{self.port}/dir"
        wait_for("pebble answers", self._answers, 30)

    def _answers(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.ca))
        try:
            with socket.create_connection((self.address, self.port), timeout=2) as raw, \
                    context.wrap_socket(raw, server_hostname="host.docker.internal"):
                return True
        except OSError:
            return False

    def root_pem(self) -> str:
        """The root pebble signs with (random for each pebble run), from its management interface."""
        context = ssl._create_unverified_context()   # the management port on loopback, our own process
        with urllib.request.urlopen(f"https://127.0.0.1:{self.management}/roots/0", context=context,
                                    timeout=10) as response:
            return response.read().decode()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()


class AcmeStack(LiveStack):
    def __init__(self, directory: Path):
        super().__init__(directory / "stack", stack=STACK)
        self.pebble = Pebble(directory, self.http_port)
        self.engine.base_config.update({
            "webstack:release": "a1", "webstack:domain": DOMAIN,
            "webstack:tls": {"mode": "acme", "acmeEmail": EMAIL, "acmeServer": self.pebble.directory_url,
                             "acmeServerCa": self.pebble.ca.read_text()}})
        self.url = f"https://127.0.0.1:{self.https_port}"
        self.acme = f"webstack-{STACK}-acme"

    @property
    def edge(self) -> str:
        """The serving edge: the engine names each one anew (components/edge.py)."""
        names = docker("ps", "--filter", f"label=webstack.stack={STACK}", "--filter", "label=webstack.role=edge",
                       "--format", "{{.Names}}").stdout.split()
        assert len(names) == 1, names
        return names[0]

    def served_certificate(self, name: str = DOMAIN) -> x509.Certificate:
        """The leaf the edge presents for `name`, verified against pebble's current root (not ignoring errors)."""
        context = ssl.create_default_context(cadata=self.pebble.root_pem())
        with socket.create_connection(("127.0.0.1", self.https_port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=name) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))

    def get(self, path: str, host: str = DOMAIN, method: str = "GET", body: bytes | None = None,
            tls: bool = True) -> http.client.HTTPResponse:
        if tls:
            context = ssl.create_default_context(cadata=self.pebble.root_pem())
            context.check_hostname = False     # the address is 127.0.0.1; the name is checked by served_certificate
            connection = http.client.HTTPSConnection("127.0.0.1", self.https_port, timeout=10, context=context)
        else:
            connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        headers = {"Host": host, "Content-Type": "application/json"}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.body = response.read()
        connection.close()
        return response

    def acme_log(self) -> str:
        result = docker("logs", self.acme, check=False)
        return result.stdout + result.stderr

    def load(self, seconds: float = 600) -> tuple[Load, Load]:
        return (Load(self.url + "/", 20, seconds, host_header=DOMAIN).start(),
                Load(self.url + "/api/notes", 20, seconds, host_header=DOMAIN).start())


@pytest.fixture(scope="module")
def stack(tmp_path_factory, request):
    made: list[AcmeStack] = []

    def make() -> AcmeStack:
        made.append(AcmeStack(tmp_path_factory.mktemp("acmetest")))
        return made[0]
    try:
        yield from deployed(make, request, "acme")
    finally:
        for stack in made:
            stack.pebble.stop()


def test_1_up_issues_the_certificate_over_http01_and_the_edge_serves_it(stack):
    started = time.monotonic()
    result = stack.up()
    stack.figures["up with the first issuance (cold: images, containers, HTTP-01, pebble)"] = f"{result.seconds:.1f}s"
    assert all(health(name) == "healthy" for name in (stack.acme, stack.edge)), \
        {name: health(name) for name in (stack.acme, stack.edge)}
    leaf = stack.served_certificate()      # verified against pebble's root: a self-signed one would fail here
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
        x509.DNSName) == [DOMAIN]
    stack.first = leaf
    log = stack.acme_log()
    # The edge served a self-signed certificate before the first real one, so HTTPS never refused.
    assert log.index("published the self-signed certificate") < log.index("published the acme certificate"), log
    lifetime = (leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds()
    stack.figures["certificate lifetime (pebble)"] = f"{lifetime:.0f}s"
    took = re.search(r"lego run for \S+ succeeded in (\d+) s", log)
    stack.figures["first issuance (lego run: order, HTTP-01 validation, certificate)"] = \
        f"{took.group(1) if took else '?'}s; served {time.monotonic() - started:.1f}s after up started"
    assert stack.get("/").status == 200
    # The account key stays private to the ACME container; the edge reads only the published pair.
    listing = docker("exec", stack.acme, "stat", "-c", "%a %U:%G %n", "/var/lib/webstack-acme/lego",
                     "/var/lib/webstack-acme/certs/live/privkey.pem").stdout.split("\n")
    assert listing[0].startswith("700 acme:nginx") and listing[1].startswith("640 acme:nginx"), listing
    assert docker("exec", stack.edge, "ls", "/var/lib/webstack-acme/lego", check=False).returncode != 0
    again = stack.up()
    assert again.changed == 0, again.changes


def test_2_a_real_browser_trusts_the_issued_certificate_through_pebbles_root(stack, tmp_path):
    root = tmp_path / "pebble-root.pem"
    root.write_text(stack.pebble.root_pem())

    def browse(home: Path) -> str:
        return subprocess.run(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={home / 'profile'}",
             f"--host-resolver-rules=MAP {DOMAIN} 127.0.0.1", "--virtual-time-budget=10000", "--dump-dom",
             f"https://{DOMAIN}:{stack.https_port}/"],
            capture_output=True, text=True, timeout=120, env={**os.environ, "HOME": str(home)}).stdout

    trusting = tmp_path / "trusting"
    nssdb = trusting / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run(["certutil", "-N", "--empty-password", "-d", f"sql:{nssdb}"], check=True, capture_output=True)
    subprocess.run(["certutil", "-A", "-n", "pebble root", "-t", "C,,", "-i", str(root), "-d", f"sql:{nssdb}"],
                   check=True, capture_output=True)
    dom = browse(trusting)
    assert 'data-state="up"' in dom, dom[-2000:]
    # The same browser without pebble's root in its store gets no page: the trust above is what made it work.
    untrusting = tmp_path / "untrusting"
    untrusting.mkdir()
    assert 'data-state="up"' not in browse(untrusting)


def test_3_the_acme_container_renews_at_two_thirds_of_the_lifetime_under_load_without_a_failed_request(stack):
    loads = stack.load()
    renewed = wait_for("the edge serves a renewed certificate",
                       lambda: (lambda c: c if c.serial_number != stack.first.serial_number else None)(
                           stack.served_certificate()), CERT_SECONDS * 2, every=1)
    seen_after = (dt.datetime.now(dt.timezone.utc) - stack.first.not_valid_before_utc).total_seconds()
    issued_after = (renewed.not_valid_before_utc - stack.first.not_valid_before_utc).total_seconds()
    load = stop_all(loads, tail=3)
    stack.figures["automatic renewal after the first certificate's notBefore"] = \
        f"issued at +{issued_after:.0f}s, served by +{seen_after:.0f}s (due at 2/3 of {CERT_SECONDS}s = " \
        f"{CERT_SECONDS * 2 // 3}s)"
    stack.figures["load during the automatic renewal"] = load.detail
    assert load.failed == 0, load.detail
    assert issued_after >= CERT_SECONDS * 2 / 3 - 2, "renewed before it was due"
    assert stack.get("/").status == 200            # the page, over the renewed certificate
    edge_log = docker("logs", stack.edge, check=False)
    assert "reloaded nginx for certificate" in edge_log.stdout + edge_log.stderr
    # A forced renewal (what an operator runs after a key compromise), timed.
    loads = stack.load()
    started = time.monotonic()
    forced = docker("exec", stack.acme, "webstack-acme", "renew", "--force", check=False)
    renew_seconds = time.monotonic() - started
    assert forced.returncode == 0, forced.stderr[-2000:]
    newest = wait_for("the edge serves the forced renewal",
                      lambda: (lambda c: c if c.serial_number != renewed.serial_number else None)(
                          stack.served_certificate()), 30)
    served_seconds = time.monotonic() - started
    load = stop_all(loads)
    stack.figures["forced renewal (lego renew)"] = f"{renew_seconds:.1f}s; served after {served_seconds:.1f}s"
    stack.figures["load during the forced renewal"] = load.detail
    assert load.failed == 0, load.detail
    assert newest.not_valid_after_utc > renewed.not_valid_after_utc


def test_3b_ops_status_shows_the_served_acme_certificate(stack):
    before = stack.served_certificate()
    result = stack.engine.ops("status", "--json")
    after = stack.served_certificate()
    assert result.returncode == 0, result.stderr
    expiry = json.loads(result.stdout)["certificate"]
    # The 90-s certificates renew every minute: the status read either the one before or the one after.
    assert any(f"{c.not_valid_after_utc:%Y-%m-%d %H:%M}" in expiry for c in (before, after)), expiry


def test_3c_a_broken_published_pair_is_refused_by_the_edge_and_the_served_certificate_stays(stack):
    served = stack.served_certificate()
    # What a bad write would leave: a new live directory whose certificate is not PEM (named to sort first, so
    # that the next publication removes it).
    docker("exec", stack.acme, "sh", "-c",
           "cd /var/lib/webstack-acme/certs && mkdir 00000101T000000-0_broken && "
           "echo not-a-certificate > 00000101T000000-0_broken/fullchain.pem && "
           "cp live/privkey.pem 00000101T000000-0_broken/ && chmod -R g+rX 00000101T000000-0_broken && "
           "ln -sfn 00000101T000000-0_broken .live.new && mv -T .live.new live")
    def edge_log() -> str:
        result = docker("logs", stack.edge, check=False)
        return result.stdout + result.stderr
    wait_for("the edge logs the refused pair",
             lambda: "nginx rejected the configuration with certificate 00000101T000000-0_broken" in edge_log(), 30)
    assert stack.served_certificate().serial_number == served.serial_number
    assert stack.get("/").status == 200
    fixed = docker("exec", stack.acme, "webstack-acme", "renew", "--force", check=False)
    assert fixed.returncode == 0, fixed.stderr[-2000:]
    wait_for("the edge serves the renewed certificate",
             lambda: stack.served_certificate().serial_number != served.serial_number, 30)


def test_4_the_edge_answers_only_its_domain(stack):
    assert stack.get("/", host="other.example").status == 421
    assert stack.get("/", host=DOMAIN).status == 200
    redirect = stack.get("/some/page?x=1", host="other.example", tls=False)
    assert redirect.status == 308
    assert redirect.getheader("Location") == f"https://{DOMAIN}:{stack.https_port}/some/page?x=1"
    # The challenge path is served on port 80 (a missing token is a 404, not a redirect).
    assert stack.get("/.well-known/acme-challenge/no-such-token", tls=False).status == 404


def test_5_a_burst_of_writes_gets_429_with_the_security_headers_while_reads_pass(stack):
    def write(_: int) -> tuple[int, str | None]:
        response = stack.get("/api/notes", method="POST", body=b'{"text": "burst"}')
        return response.status, response.getheader("X-Content-Type-Options")
    with ThreadPoolExecutor(max_workers=16) as pool:
        writes = list(pool.map(write, range(60)))
        reads = list(pool.map(lambda _: stack.get("/api/notes").status, range(40)))
    statuses = [status for status, _ in writes]
    stack.figures["burst of 60 writes"] = f"{statuses.count(201)} created, {statuses.count(429)} refused (429)"
    assert statuses.count(429) > 0 and set(statuses) <= {201, 429}, statuses
    assert all(header == "nosniff" for status, header in writes if status == 429)
    assert set(reads) == {200}, reads


@pytest.mark.parametrize("mode", ["off", "self-signed", "provided", "acme"])
def test_5b_every_tls_modes_site_passes_nginx_t_in_the_edge_image(stack, mode):
    """The edge image's nginx accepts the site of each mode (host-only servers, rate limit, challenge path)."""
    from components import contract, rendering, self_signed
    from components.settings_loader import load_settings
    from tests.live.test_scenarios import PROJECT_DIR
    tls = {"mode": mode}
    if mode == "acme":
        tls.update(acmeEmail=EMAIL)
    cert, key = self_signed.generate(DOMAIN)
    if mode == "provided":
        tls.update(certificate=cert, privateKey=key)
    settings = load_settings({"release": "r1", "domain": DOMAIN, "tls": json.dumps(tls)}, {"tls"}, STACK, PROJECT_DIR)
    text = rendering.render_edge_site(settings, ["b-1"], ["w-1"])
    # Upstream names must resolve for nginx -t: the stack's own containers stand in for them.
    text = text.replace("server b-1:", f"server {stack.containers('backend')[0]}:").replace(
        "server w-1:", f"server {stack.containers('web')[0]}:")
    text = text.replace(f"{contract.EDGE_CONFIG_DIR}/live/tls", "/tmp/check/tls").replace(
        contract.ACME_LIVE_DIR, "/tmp/check/tls")
    conf = docker("exec", stack.edge, "cat", "/etc/nginx/nginx.conf").stdout.replace(
        f"{contract.EDGE_CONFIG_DIR}/live/*.conf", "/tmp/check/site.conf")
    files = {"nginx.conf": conf, "site.conf": text, "tls/fullchain.pem": cert, "tls/privkey.pem": key}
    docker("exec", stack.edge, "sh", "-c", "rm -rf /tmp/check && mkdir -p /tmp/check/tls")
    for name, content in files.items():
        subprocess.run(["docker", "exec", "-i", stack.edge, "sh", "-c", f"cat > /tmp/check/{name}"], input=content,
                       text=True, check=True, capture_output=True)
    result = docker("exec", stack.edge, "nginx", "-t", "-c", "/tmp/check/nginx.conf", check=False)
    assert result.returncode == 0, result.stderr


def test_6_a_refused_issuance_fails_the_update_naming_the_domain_and_the_servers_reason(stack):
    with pytest.raises(EngineFailed) as failed:
        stack.up(**{"webstack:domain": BLOCKED})
    message = failed.value.message
    assert f"could not get a certificate for {BLOCKED}" in message, message[-3000:]
    # pebble's own problem document: its type and detail
    assert "urn:ietf:params:acme:error:rejectedIdentifier" in message and "forbidden by policy" in message, \
        message[-3000:]
    # The edge still answers HTTPS while the update failed: with a self-signed certificate for the new domain.
    def served_subject() -> str:
        context = ssl._create_unverified_context()     # self-signed on purpose; only its names are checked
        with socket.create_connection(("127.0.0.1", stack.https_port), timeout=10) as raw, \
                context.wrap_socket(raw, server_hostname=BLOCKED) as tls:
            leaf = x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
        return leaf.subject.rfc4514_string() if leaf.subject == leaf.issuer else ""
    assert wait_for("the edge serves a self-signed certificate for the new domain",
                    lambda: served_subject() == f"CN={BLOCKED}", 30)
    assert stack.get("/", host=BLOCKED, tls=False).status == 308
