"""The rendered edge site, live and canary together as during a switch, passes `nginx -t` under the edge image's
nginx.conf: a table of edge settings here, where this machine has the edge image's packages (Debian's nginx and
libnginx-mod-http-headers-more-filter), and generated configurations in the image itself
(tests/live/test_edge_config_properties.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from components import contract, rendering, self_signed
from components.settings_loader import load_settings
from tests.settings_strategies import valid_config
from tests.stack_config import PROJECT_DIR

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
HEADERS_MORE = Path("/usr/lib/nginx/modules/ngx_http_headers_more_filter_module.so")
MISSING = "needs nginx and libnginx-mod-http-headers-more-filter (Debian packages; .ci/run installs them)"


@pytest.fixture(autouse=True, scope="module")
def nginx_is_installed() -> None:
    """Skipped with the reason outside CI; in CI (.ci/run installs both) a missing one fails."""
    if not NGINX or not HEADERS_MORE.exists():
        if os.environ.get("CI"):
            pytest.fail(MISSING)
        print(f"skipped: {MISSING}")
        pytest.skip(MISSING)

EVERY_NAME = {"aliases": ["example.org"], "redirects": ["www.example.com", "www.example.org"]}
CASES = {
    "defaults": {},
    "defaults over https": {"tls": {"mode": "self-signed"}},
    "every edge setting over https": {"tls": {"mode": "self-signed"}, "edge": {
        "maxBodyMb": 25, "readTimeoutSeconds": 120, "sendTimeoutSeconds": 30, "streamTimeoutSeconds": 7200,
        "websocketPaths": ["/api/ws", "/api/live"], "streamingPaths": ["/api/events", "/api/live/feed"],
        "trustedProxies": ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"], "writeRatePerSecond": 50,
        "writeBurst": 0, **EVERY_NAME}},
    "acme with more names": {"tls": {"mode": "acme", "acmeEmail": "ops@example.com"}, "edge": EVERY_NAME},
    "plain http with more names": {"edge": {**EVERY_NAME, "streamingPaths": ["/api"]}},
    "a backend-only app open everywhere": {"frontend": {"enabled": False}, "backend": {"stripPrefix": False},
                                           "edge": {"websocketPaths": ["/"], "streamingPaths": ["/events"]}},
    "the backend under its own prefix": {"backend": {"pathPrefix": "/v2/api", "stripPrefix": False},
                                         "edge": {"websocketPaths": ["/v2/api/ws"]}},
}


@pytest.fixture(scope="module")
def certificate() -> tuple[str, str]:
    return self_signed.generate("example.com")


def in_directory(text: str, root: Path) -> str:
    """The edge's absolute paths moved under `root` (/tmp first: root itself is under /tmp)."""
    return (text.replace("/tmp/", f"{root}/tmp/").replace(contract.EDGE_CONFIG_DIR, f"{root}/edge")
            .replace(contract.ACME_DIR, f"{root}/acme"))


def nginx_t(loaded, root: Path, certificate: tuple[str, str]) -> subprocess.CompletedProcess:
    """`nginx -t` of the loaded stack's live site and canary, with certificates where the site expects them."""
    backends, webs = ["127.0.0.1", "127.0.0.2"], (["127.0.0.3"] if loaded.frontend.enabled else [])
    files = {"edge/live/site.conf": rendering.render_edge_site(loaded, backends, webs),
             "edge/stage/canary.site": rendering.render_edge_site(loaded, backends, webs, canary=True),
             "nginx.conf": (PROJECT_DIR / "containers" / "edge" / "nginx.conf").read_text()}
    for directory in ("edge/live/tls", "edge/stage/tls", "acme/certs/live"):
        files[f"{directory}/fullchain.pem"], files[f"{directory}/privkey.pem"] = certificate
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(in_directory(text, root))
    (root / "tmp").mkdir()
    return subprocess.run([NGINX, "-t", "-q", "-e", "stderr", "-p", str(root), "-c", str(root / "nginx.conf")],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("case", CASES)
def test_the_rendered_site_passes_nginx_t_beside_its_canary(case, tmp_path, certificate):
    values = {"release": "r1", "domain": "example.com", **CASES[case]}
    loaded = load_settings({k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}, set(), "s",
                           PROJECT_DIR)
    result = nginx_t(loaded, tmp_path, certificate)
    assert result.returncode == 0, result.stderr


def test_generated_configurations_pass_nginx_t(certificate):
    """A sample of what the settings accept (tests/settings_strategies.py); the live test takes 100 in the image."""

    @settings(max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(valid_config())
    def check(case):
        stack, values = case
        with tempfile.TemporaryDirectory() as root:
            result = nginx_t(load_settings(values, set(), stack, PROJECT_DIR), Path(root), certificate)
        assert result.returncode == 0, result.stderr

    check()
