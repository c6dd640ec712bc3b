"""Pure functions that render templates/ into the text of configuration files and scripts.

Everything goes through `render`, whose StrictUndefined turns a missing variable into an error instead of an
empty string. No function here reads configuration or touches a resource: they take settings, return text.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import shlex
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

import jinja2

from . import contract
from .settings import Database, Settings, is_within

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

_environment = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,   # these are config files and shell scripts, not HTML
)
# `{{ value | sh }}`: every value a shell script gets is one quoted word, whatever validation let through.
_environment.filters["sh"] = shlex.quote
_environment.filters["shjoin"] = shlex.join

# Mozilla intermediate (guidelines 6.0) cipher list for TLS 1.2; TLS 1.3 suites are not configurable in nginx.
MOZILLA_INTERMEDIATE_CIPHERS = ":".join([
    "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
])

# OWASP Secure Headers project (ci/headers_add.json). HSTS is added only when TLS is on.
PERMISSIONS_POLICY = ", ".join(f"{feature}=()" for feature in (
    "accelerometer", "autoplay", "camera", "cross-origin-isolated", "display-capture", "encrypted-media",
    "fullscreen", "geolocation", "gyroscope", "keyboard-map", "magnetometer", "microphone", "midi", "payment",
    "picture-in-picture", "publickey-credentials-get", "screen-wake-lock", "usb", "web-share",
    "xr-spatial-tracking", "clipboard-read", "clipboard-write", "gamepad", "hid", "idle-detection",
    "interest-cohort", "serial", "unload")) + ", sync-xhr=(self)"
HSTS = "max-age=63072000; includeSubDomains"


# Retry-After on every 503: a database replacement pauses the API for a few seconds (measured in
# tests/live/test_interruptions.py), and the edge's own 503 page is about as short-lived.
RETRY_AFTER_SECONDS = 5

# The edge's own page for every error status nginx itself produces (and the frontend's, which the edge
# intercepts), by status: a title, no server name, version, upstream or path. The backend's own error responses
# pass through untouched.
EDGE_ERROR_TITLES = {
    400: "Bad request", 403: "Forbidden", 404: "Not found", 405: "Method not allowed", 408: "Request timeout",
    411: "Length required", 413: "Request too large", 414: "URI too long", 416: "Range not satisfiable",
    421: "Misdirected request", 429: "Too many requests", 494: "Request header too large",
    495: "Bad client certificate", 496: "Client certificate required", 497: "HTTPS required",
    500: "Internal error", 501: "Not implemented", 502: "Bad gateway", 503: "Service unavailable",
    504: "Gateway timeout", 505: "HTTP version not supported",
}
# nginx's own codes (a header too large, a client certificate problem, plain HTTP sent to the HTTPS port) are
# never sent: clients get 400, as nginx's built-in pages do.
NGINX_ONLY_STATUSES = (494, 495, 496, 497)
# Worth a retry: the client did nothing wrong.
RETRYABLE_STATUSES = (408, 429, 500, 502, 503, 504)
EDGE_PAGES_PATH = "/_webstack/errors"


def edge_page(title: str, hint: str = "") -> str:
    """A small HTML page (no double quotes: it is an nginx string)."""
    return (f"<!doctype html><html lang=en><meta charset=utf-8><title>{title}</title><h1>{title}</h1>"
            + (f"<p>{hint}</p>" if hint else "") + "</html>")


def edge_error_pages() -> dict[str, str]:
    """The body of each of the edge's pages by its internal path: one per error status, and one for the edge's
    own redirects (nginx's built-in redirect body names nginx)."""
    pages = {f"{EDGE_PAGES_PATH}/{code}": edge_page(title, "Please try again later." if code in RETRYABLE_STATUSES
                                                     else "")
             for code, title in EDGE_ERROR_TITLES.items()}
    pages[f"{EDGE_PAGES_PATH}/moved"] = edge_page("Moved")
    pages["default"] = edge_page("Error")   # the map's fallback: no error_page leads there
    return pages


def edge_error_statuses() -> dict[int, int]:
    """Each error status the edge has a page for -> the status the client gets."""
    return {code: 400 if code in NGINX_ONLY_STATUSES else code for code in EDGE_ERROR_TITLES}


@dataclass(frozen=True)
class BackendLocation:
    """One nginx location that proxies to the backend: `match` follows `location`, `uri` is what proxy_pass puts
    in place of the matched part (empty: the request's path as it came)."""

    match: str
    uri: str
    websocket: bool = False
    streaming: bool = False


def backend_locations(settings: Settings) -> list[BackendLocation]:
    """The backend's prefix, then each WebSocket or streaming path below it as two locations (the path itself and
    everything under it: whole segments, so `/api/ws` is not `/api/wsx`). nginx picks the longest match; a path
    gets the treatment of every listed path it lies within ('/', or the prefix itself: the whole backend)."""
    edge, prefix = settings.edge, settings.backend_prefix
    strip = settings.backend.stripPrefix and prefix != "/"

    def treatment(path: str) -> dict[str, bool]:
        return {"websocket": any(is_within(path, listed) for listed in edge.websocketPaths),
                "streaming": any(is_within(path, listed) for listed in edge.streamingPaths)}

    locations = [BackendLocation(prefix if prefix == "/" else f"{prefix}/", "/" if strip else "", **treatment(prefix))]
    for path in sorted({*edge.websocketPaths, *edge.streamingPaths} - {prefix}):
        below = path[len(prefix):] if strip else ""   # stripPrefix: /api/ws reaches the backend as /ws
        locations += [BackendLocation(f"= {path}", below, **treatment(path)),
                      BackendLocation(f"{path}/", f"{below}/" if strip else "", **treatment(path))]
    return locations


def security_headers(tls: bool) -> dict[str, str]:
    """The headers the edge adds to every response. `upgrade-insecure-requests` would break plain-HTTP stacks."""
    csp = "default-src 'self'; form-action 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'none'"
    headers = {
        "Content-Security-Policy": csp + ("; upgrade-insecure-requests" if tls else ""),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "deny",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": PERMISSIONS_POLICY,
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Embedder-Policy": "require-corp",
        "Cross-Origin-Resource-Policy": "same-origin",
        "X-Permitted-Cross-Domain-Policies": "none",
        "X-DNS-Prefetch-Control": "off",
    }
    if tls:
        headers["Strict-Transport-Security"] = HSTS
    return headers


def render(template: str, **context: object) -> str:
    return _environment.get_template(template).render(**context)


def render_postgresql_conf(database: Database) -> str:
    return render("db/postgresql.conf.j2", socket_dir=contract.SOCKET_DIR, conf_dir=contract.POSTGRES_CONF_DIR,
                  # Room for two generations of backends at once during a release (16 replicas x 8 workers each).
                  dbsock_gid=contract.DBSOCK_GID, max_connections=300,
                  shared_buffers_mb=max(32, database.memoryMb // 4),
                  pitr=database.pitr.enabled, archive_timeout=database.pitr.archiveTimeoutSeconds)


def render_pg_hba(database: Database) -> str:
    return render("db/pg_hba.conf.j2", db_name=database.name, db_user=database.user)


def render_pg_ident(database: Database) -> str:
    return render("db/pg_ident.conf.j2", os_user=contract.BACKEND_OS_USER, restore_os_user=contract.POSTGRES_OS_USER,
                  db_user=database.user)


def database_build_args(database: Database) -> dict[str, str]:
    """Build arguments of containers/db: the rendered files, base64 so that newlines survive `--build-arg`."""
    files = {"PG_CONF_B64": render_postgresql_conf(database), "PG_HBA_B64": render_pg_hba(database),
             "PG_IDENT_B64": render_pg_ident(database)}
    return {name: base64.b64encode(text.encode()).decode() for name, text in files.items()}


def render_edge_site(settings: Settings, backend_servers: list[str], web_servers: list[str],
                     canary: bool = False) -> str:
    """The edge's nginx site for one release: upstreams are the release's container names. With `canary`, only
    the release's upstreams and a server on this edge's own socket (contract.EDGE_CANARY_SOCKET), same routes:
    the edge switch checks a release through it before the public servers switch."""
    if not backend_servers or (settings.frontend.enabled and not web_servers):
        raise ValueError("the edge needs at least one backend server, and one web server with a frontend")
    web_servers = web_servers if settings.frontend.enabled else []   # a backend-only app: no web route at all
    tls = settings.tls_enabled
    acme = settings.tls.mode == "acme"
    # The canary serves the bundle's certificate (stage/tls) before it goes live; in acme mode the edge serves the
    # ACME container's published pair either way.
    tls_dir = contract.ACME_LIVE_DIR if acme else f"{contract.EDGE_CONFIG_DIR}/{'stage' if canary else 'live'}/tls"
    edge = settings.edge
    return render(
        "edge/site.conf.j2", canary=canary, upstream_prefix="webstack_canary_" if canary else "webstack_",
        canary_socket=contract.EDGE_CANARY_SOCKET,
        http_socket=contract.EDGE_HTTP_SOCKET, https_socket=contract.EDGE_HTTPS_SOCKET,
        stack=settings.stack, release=settings.release, domain=settings.domain,
        server_names=" ".join([settings.domain, *edge.aliases]), aliases=edge.aliases, redirects=edge.redirects,
        site_url=settings.url,
        public_host=settings.url.split("://", 1)[1],   # the domain, and the published port unless 80/443
        tls=tls, headers=security_headers(tls), backend_servers=backend_servers, web_servers=web_servers,
        backend_port=settings.backend.port, web_port=contract.WEB_PORT,
        http_port=contract.EDGE_HTTP_PORT, https_port=contract.EDGE_HTTPS_PORT,
        https_port_suffix="" if settings.httpsPort == 443 else f":{settings.httpsPort}",
        tls_dir=tls_dir, acme_webroot=contract.ACME_WEBROOT if acme else None,
        write_rate=edge.writeRatePerSecond, write_burst=edge.writeBurst,
        retry_after_seconds=RETRY_AFTER_SECONDS, error_statuses=edge_error_statuses(),
        error_page_bodies=edge_error_pages(), error_pages_path=EDGE_PAGES_PATH,
        ssl_ciphers=MOZILLA_INTERMEDIATE_CIPHERS,
        ocsp_stapling=settings.tls.ocspStapling, edge_health_path=contract.EDGE_HEALTH_PATH,
        backend_prefix=settings.backend_prefix, strip_prefix=settings.backend.stripPrefix,
        backend_locations=backend_locations(settings), max_body_mb=edge.maxBodyMb,
        read_timeout=edge.readTimeoutSeconds, send_timeout=edge.sendTimeoutSeconds,
        stream_timeout=edge.streamTimeoutSeconds, trusted_proxies=edge.trustedProxies)


def edge_check_paths(settings: Settings) -> list[str]:
    """Paths the edge switch fetches through the edge: the frontend's page, and the backend's health path as
    the edge serves it (under the prefix; with stripPrefix off the app's own path must start with it)."""
    prefix, health = settings.backend_prefix.rstrip("/"), settings.backend.healthPath
    paths = ["/"] if settings.frontend.enabled else []
    if settings.backend.stripPrefix:
        paths.append(f"{prefix}{health}")
    elif health == prefix or health.startswith(prefix + "/"):
        paths.append(health)
    return paths


# Pauses between the tries of the checks through the edge. The release gate already found the containers
# healthy: a release that fails through the canary within about 1.5 s is refused before the switch, and one that
# then fails through the public server within about 7 s is switched back.
EDGE_CANARY_DELAYS = ("0.5", "1")
EDGE_VERIFY_DELAYS = ("0.5", "1", "2", "4")


def render_edge_switch(settings: Settings, generation: str, *, apply_command: str = contract.EDGE_APPLY_COMMAND,
                       config_dir: str = contract.EDGE_CONFIG_DIR, canary_delays: Sequence[str] = EDGE_CANARY_DELAYS,
                       delays: Sequence[str] = EDGE_VERIFY_DELAYS) -> str:
    """The edge switch's script inside the edge (templates/edge/switch.sh.j2): stage the canary, check through it,
    switch, check through the public server, switch back on failure."""
    tls = settings.tls_enabled
    return render("edge/switch.sh.j2", generation=generation, apply_command=apply_command, tls=tls,
                  domain=settings.domain, socket=contract.EDGE_HTTPS_SOCKET if tls else contract.EDGE_HTTP_SOCKET,
                  paths=edge_check_paths(settings), delays=delays, canary_socket=contract.EDGE_CANARY_SOCKET,
                  canary_delays=canary_delays, config_dir=config_dir)


def edge_bundle(files: Mapping[str, str]) -> str:
    """A deterministic base64 tar of the edge's files, fed to EDGE_APPLY_COMMAND on stdin.

    Deterministic (sorted, mtime 0) so that the same configuration gives the same stdin and Pulumi sees no diff.
    """
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in sorted(files):
            data = files[name].encode()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o640
            tar.addfile(info, io.BytesIO(data))
    return base64.b64encode(buffer.getvalue()).decode()


def render_known_hosts(host: str, port: int, host_key: str) -> str:
    """A known_hosts file holding exactly the pinned key, in the form ssh looks up for host:port."""
    name = host if port == 22 else f"[{host}]:{port}"
    return f"{name} {host_key}\n"


def render_bootstrap(settings: Settings, min_docker_version: str) -> str:
    return render("host/bootstrap.sh.j2", stack=settings.stack, deploy_user=settings.target.user,
                  deploy_root=f"/srv/webstack/{settings.stack}", min_docker_version=min_docker_version,
                  allow_docker_restart="yes" if settings.target.allowDockerRestart else "no")


def digest(*parts: object, length: int = 8) -> str:
    """A short stable digest: names a generation of containers after everything that shapes them."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:length]


def keyed_digest(key: Optional[str], *parts: object, length: int = 8) -> str:
    """digest(), keyed with HMAC-SHA256 when there is a key: a name that must not let anyone test guesses of a
    secret that went into it (issue 19, finding 10: a 4-digit value came back from a plain digest in 0.08 s)."""
    if key is None:
        return digest(*parts, length=length)
    return hmac.new(key.encode(), repr(parts).encode(), hashlib.sha256).hexdigest()[:length]
