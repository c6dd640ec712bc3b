"""Every generated valid configuration's edge site passes `nginx -t` in the real edge image (a sample of 100).

Hypothesis draws the configurations (tests/settings_strategies.py) and the site is rendered as the program
renders it; all cases then run in one container of the edge image (one `nginx -t` per case, each with its own
site and, with TLS, a certificate), so the sample costs one container start. Upstream names resolve through
--add-host, as the release's container names do on the app network.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from components import contract
from components.rendering import render_edge_site
from components.settings_loader import load_settings
from tests.live.conftest import docker
from tests.live.test_images import self_signed_files
from tests.settings_strategies import valid_config
from tests.stack_config import PROJECT_DIR
from tests.unit.test_settings_properties import upstreams

SAMPLE = 100
LIVE = contract.EDGE_CONFIG_DIR + "/live"
STAGE = contract.EDGE_CONFIG_DIR + "/stage"     # the canary's site and certificate (edge-switch.sh.j2)


def test_a_sample_of_generated_edge_sites_passes_nginx_t_in_the_edge_image(webstack_images, tmp_path):
    cases: list[tuple[str, list[str]]] = []
    certificate = self_signed_files()   # one key pair for the sample: generating one per case is slow

    @settings(max_examples=SAMPLE, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(valid_config())
    def render(case):
        stack, values = case
        loaded = load_settings(values, set(), stack, PROJECT_DIR)
        backends, webs = upstreams(loaded)
        directory = tmp_path / f"case-{len(cases):03d}"
        directory.mkdir()
        (directory / "site.conf").write_text(render_edge_site(loaded, backends, webs))
        (directory / "canary.site").write_text(render_edge_site(loaded, backends, webs, canary=True))
        if loaded.tls_enabled:
            for name, text in certificate.items():
                (directory / name).parent.mkdir(exist_ok=True)
                (directory / name).write_text(text)
        cases.append((directory.name, backends + webs))

    render()
    assert len(cases) >= SAMPLE, len(cases)
    for path in [tmp_path, *tmp_path.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)   # nginx reads them as uid 101
    hosts = sorted({name for _, names in cases for name in names})
    # The live site and the canary beside it, as during a switch; in acme mode the certificate is the ACME
    # container's published pair.
    script = (f'for d in /cases/case-*; do rm -rf {LIVE}/* {STAGE}/* {contract.ACME_DIR}/*; '
              f'cp -r "$d"/. {LIVE}/; cp -r "$d"/. {STAGE}/; mkdir -p {contract.ACME_LIVE_DIR}; '
              f'if [ -d "$d/tls" ]; then cp "$d"/tls/* {contract.ACME_LIVE_DIR}/; fi; '
              'if nginx -t -q 2>/tmp/err; then echo "OK $d"; else echo "FAIL $d"; cat /tmp/err; fi; done; echo DONE')
    result = docker("run", "--rm", "--user", str(contract.NGINX_UID), "--network", "none",
                    "--tmpfs", "/tmp", "--tmpfs", f"{LIVE}:mode=0777,uid={contract.NGINX_UID}",
                    "--tmpfs", f"{STAGE}:mode=0777,uid={contract.NGINX_UID}",
                    "--tmpfs", f"{contract.ACME_DIR}:mode=0777,uid={contract.NGINX_UID}",
                    "-v", f"{tmp_path}:/cases:ro", *[f"--add-host={h}:127.0.0.1" for h in hosts],
                    webstack_images.tags["edge"], "sh", "-c", script, timeout=600)
    assert result.stdout.strip().endswith("DONE"), result.stdout[-2000:] + result.stderr[-2000:]
    failures = [line for line in result.stdout.splitlines() if line.startswith("FAIL")]
    assert not failures, result.stdout[-4000:]
    assert len([line for line in result.stdout.splitlines() if line.startswith("OK ")]) == len(cases)
