"""Hypothesis strategies for webstack configuration, as `pulumi config` hands it to the program (raw strings,
objects as JSON), shared by the unit property tests and the live `nginx -t` sample.

Valid values are drawn from the same patterns components/settings.py validates with, so the properties cover
every shape the settings accept, not hand-picked examples. TLS is `off` or `self-signed` (a provided
certificate needs a real key pair; tests/unit/test_settings.py covers it on examples).
"""

from __future__ import annotations

import json

from hypothesis import strategies as st

from components import settings as s

LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
HOSTNAMES = st.lists(LABEL, min_size=1, max_size=3).map(".".join)
PORTS = st.integers(1, 65535)
STACKS = st.from_regex(s.STACK, fullmatch=True).filter(lambda v: len(v) <= 30)
SQL_NAMES = st.from_regex(s.SQL_NAME, fullmatch=True).filter(lambda v: v != "postgres")
UNIX_USERS = st.from_regex(s.UNIX_USER, fullmatch=True).filter(lambda v: v != "root")
HOST_KEYS = st.builds(lambda kind, body: f"{kind} {body}", st.sampled_from(["ssh-ed25519", "ecdsa-sha2-nistp256"]),
                      st.from_regex(r"[A-Za-z0-9+/]{16,68}", fullmatch=True))
ENV = st.dictionaries(st.from_regex(s.ENV_NAME, fullmatch=True), st.text(max_size=20), max_size=3)

TARGETS = st.one_of(
    st.fixed_dictionaries({"kind": st.just("local")}),
    st.fixed_dictionaries({"kind": st.just("ssh"), "host": HOSTNAMES, "port": PORTS, "user": UNIX_USERS,
                           "hostKey": HOST_KEYS}),
)


@st.composite
def valid_config(draw) -> tuple[str, dict[str, str]]:
    """(stack name, raw config values) that load_settings must accept."""
    http, https = draw(st.lists(PORTS, min_size=2, max_size=2, unique=True))
    values = {
        "release": draw(st.from_regex(s.RELEASE, fullmatch=True)),
        "domain": draw(HOSTNAMES),
        "httpPort": str(http), "httpsPort": str(https),
        "publishAddress": draw(st.sampled_from(["127.0.0.1", "0.0.0.0", "::1", "192.0.2.10"])),
        "target": draw(TARGETS),
        "tls": draw(st.sampled_from([{"mode": "off"}, {"mode": "self-signed"},
                                     {"mode": "acme", "acmeEmail": "ops@example.com"}])),
        "database": {"name": draw(SQL_NAMES), "user": draw(SQL_NAMES), "memoryMb": draw(st.integers(128, 8192)),
                     "backups": {"keepScheduled": draw(st.integers(1, 365)),
                                 "keepPreDeploy": draw(st.integers(1, 365))}},
        "backend": {"port": draw(st.integers(1024, 65535)), "healthPath": draw(st.from_regex(s.URL_PATH, fullmatch=True)),
                    "replicas": draw(st.integers(1, 16)), "memoryMb": draw(st.integers(64, 4096)), "env": draw(ENV)},
    }
    # Routing (docs/own-app.md): a backend-only app may own '/', a frontend never shares it.
    frontend = draw(st.booleans())
    values["frontend"] = {"enabled": frontend}
    prefix = draw(st.sampled_from([None, "/api", "/app", "/a/b-c_1.d"] + ([] if frontend else ["/"])))
    if prefix is not None:
        values["backend"]["pathPrefix"] = prefix
    values["backend"]["stripPrefix"] = draw(st.booleans())
    values["edge"] = draw(edge_settings(prefix or ("/api" if frontend else "/"), values["domain"]))
    return draw(STACKS), {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}


SEGMENT = st.from_regex(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,8}", fullmatch=True)
PROXIES = st.sampled_from(["10.0.0.0/8", "172.16.0.0/12", "192.0.2.7", "2001:db8::/32", "::1"])


@st.composite
def edge_settings(draw, served_prefix: str, domain: str) -> dict:
    """webstack:edge for a site whose backend is served under `served_prefix` (its WebSocket and streaming paths
    lie there: the prefix itself or below it)."""
    below = st.lists(SEGMENT, max_size=2).map(lambda parts: "/".join([served_prefix.rstrip("/"), *parts]) or "/")
    names = draw(st.lists(HOSTNAMES.filter(lambda name: name != domain), unique=True, max_size=3))
    split = draw(st.integers(0, len(names)))
    return {"maxBodyMb": draw(st.integers(1, s.MAX_BODY_MB)), "readTimeoutSeconds": draw(st.integers(1, 3600)),
            "sendTimeoutSeconds": draw(st.integers(1, 3600)), "streamTimeoutSeconds": draw(st.integers(1, 86400)),
            "websocketPaths": draw(st.lists(below, unique=True, max_size=2)),
            "streamingPaths": draw(st.lists(below, unique=True, max_size=2)),
            "trustedProxies": draw(st.lists(PROXIES, unique=True, max_size=3)),
            "writeRatePerSecond": draw(st.integers(1, 10000)), "writeBurst": draw(st.integers(0, 10000)),
            "aliases": names[:split], "redirects": names[split:]}


# One bad value per draw: (the key whose value is wrong, raw config with it). Each must be refused by name.
INVALID = st.one_of(
    st.tuples(st.just("release"), st.sampled_from(["-x", "a b", "x" * 41, "v1\n", "é"])),
    st.tuples(st.just("domain"), st.sampled_from(["", "a..b", "-a.com", "a_b.com", "x" * 254, "a b"])),
    st.tuples(st.just("httpPort"), st.one_of(st.integers(max_value=0), st.integers(min_value=65536)).map(str)),
    st.tuples(st.just("httpsPort"), st.sampled_from(["https", "8.5", "", "[]"])),
    st.tuples(st.just("publishAddress"), st.sampled_from(["localhost", "1.2.3", "fe80::1%eth0", ""])),
    st.tuples(st.just("target"), st.sampled_from([{"kind": "ftp"}, {"kind": "ssh", "host": "h"},
                                                  {"kind": "ssh", "host": "h", "hostKey": "ssh-ed25519 AAAA",
                                                   "user": "root"}, {"port": 0}, {"dockerHost": "tcp://x:2375"},
                                                  {"nope": 1}]).map(json.dumps)),
    st.tuples(st.just("tls"), st.sampled_from([{"mode": "acme"}, {"mode": "provided"}, {"mode": "on"}])
              .map(json.dumps)),
    st.tuples(st.just("database"), st.one_of(
        st.builds(lambda n: {"name": n}, st.sampled_from(["postgres", "App", "1db", "a-b", ""])),
        st.builds(lambda m: {"memoryMb": m}, st.integers(max_value=127))).map(json.dumps)),
    st.tuples(st.just("backend"), st.one_of(
        st.builds(lambda p: {"port": p}, st.one_of(st.integers(max_value=1023), st.integers(min_value=65536))),
        st.builds(lambda r: {"replicas": r}, st.one_of(st.integers(max_value=0), st.integers(min_value=17))),
        st.builds(lambda h: {"healthPath": h}, st.sampled_from(["ready", "/a b", ""])),
        st.builds(lambda e: {"env": e}, st.sampled_from([{"1X": "v"}, {"A-B": "v"}]))).map(json.dumps)),
    st.tuples(st.just("edge"), st.sampled_from([
        {"maxBodyMb": 0}, {"readTimeoutSeconds": 3601}, {"writeBurst": -1}, {"trustedProxies": ["::/0"]},
        {"trustedProxies": ["10.0.0.1/8"]}, {"websocketPaths": ["ws"]}, {"streamingPaths": ["/a;b"]},
        {"aliases": ["a b"]}, {"redirects": ["*.example.com"]}, {"aliases": ["x.example"], "redirects": ["x.example"]},
    ]).map(json.dumps)),
    st.tuples(st.sampled_from(["backend", "tls", "target", "edge"]), st.sampled_from(["{", "[1,", "{'a': 1}"])),
    st.tuples(st.from_regex(r"[a-z][A-Za-z]{2,12}", fullmatch=True).filter(
        lambda k: k not in ("release", "domain", "httpPort", "httpsPort", "publishAddress", "baseImage", "target",
                            "tls", "database", "backend", "frontend", "images", "edge")), st.just("1")),
)
