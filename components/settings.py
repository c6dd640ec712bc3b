"""The validated, frozen settings of one stack: the only place that knows what configuration means.

Field names are the camelCase keys users type (`pulumi config set --path webstack:backend.healthPath ...`), so
that every error can name the exact key. Defaults here and in Pulumi.yaml's `config:` block must agree;
tests/test_settings_defaults.py holds them to it.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from . import pem

# Every pattern is used with fullmatch and ends in \Z: `$` also matches before a trailing newline ("v1\n").
HOSTNAME = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\Z", re.I)
RELEASE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}\Z")    # a valid image tag and container-name part
STACK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")      # a file name, a container-name part, a project
SQL_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")
UNIX_USER = re.compile(r"[a-z_][a-z0-9_-]{0,31}\Z")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
HOST_KEY = re.compile(r"(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa) [A-Za-z0-9+/]+={0,3}\Z")
URL_PATH = re.compile(r"/[A-Za-z0-9/_.-]*\Z")
# A local engine's socket, as a path of plain characters: the value reaches `docker -H` and ssh-free shells.
# tcp:// is refused: webstack has no settings for the engine's TLS, and a plain tcp:// engine is root for anyone
# on the network.
DOCKER_HOST = re.compile(r"unix://(/[A-Za-z0-9._-]+)+\Z")
ACME_LETS_ENCRYPT = "https://acme-v02.api.letsencrypt.org/directory"
ACME_LETS_ENCRYPT_STAGING = "https://acme-staging-v02.api.letsencrypt.org/directory"
# The value reaches the ACME container's environment and lego's --server: a plain https URL, nothing else.
ACME_URL = re.compile(r"https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?\Z")
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+\Z")
# Docker's image reference grammar (distribution/reference): [registry[:port]/]path[:tag][@sha256:digest]. The
# value reaches Dockerfiles' FROM, build arguments and host shell scripts: nothing else may get through.
_IMAGE_PART = r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*"
_REGISTRY = r"[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*(:[0-9]{1,5})?/"
IMAGE_REF = re.compile(rf"({_REGISTRY})?{_IMAGE_PART}(/{_IMAGE_PART})*"
                       r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[0-9a-f]{64})?\Z")


class FieldProblem(ValueError):
    """A cross-field problem that belongs to one key: `path` is relative to the model that raises it."""

    def __init__(self, path: str, message: str):
        super().__init__(message)
        self.path = path


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def is_ip_address(value: str) -> bool:
    """An IPv4 or IPv6 address without a zone id: `fe80::1%*` would be a wildcard pattern in known_hosts."""
    if "%" in value:
        return False
    try:
        ipaddress.ip_address(value)
        return True
    except ValueError:
        return False


def is_loopback_endpoint(endpoint: Optional[str]) -> bool:
    """An endpoint URL whose host is this machine's loopback (localhost, 127.0.0.0/8, ::1)."""
    host = re.sub(r"^[a-z]+://", "", endpoint or "").split("/")[0].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_hostname_or_ip(value: str) -> bool:
    return is_ip_address(value) or bool(HOSTNAME.fullmatch(value))


class Target(Model):
    kind: Literal["local", "ssh"] = "local"
    host: Optional[str] = None
    port: int = Field(22, ge=1, le=65535)
    user: str = "deploy"
    hostKey: Optional[str] = None
    privateKey: Optional[SecretStr] = None
    dockerHost: str = "unix:///var/run/docker.sock"
    # Seconds the operator's ssh waits to connect (preflight, docker Provider, base-image transfer).
    connectTimeout: int = Field(10, ge=1, le=300)
    # Where the host's engine gets `baseImage`: `host` (it is there, or the host pulls/builds it itself) or
    # `operator` (sent from the operator's engine with `docker save | ssh docker load`, for registry-less hosts).
    baseImageSource: Literal["host", "operator"] = "host"
    # The bootstrap may restart a Docker engine that already runs containers (to load its daemon.json) only
    # when this is true: a restart stops every container on the host that lacks a restart policy.
    allowDockerRestart: bool = False

    @field_validator("host")
    @classmethod
    def _host(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not is_hostname_or_ip(v):
            raise ValueError(f"'{v}' is not a valid hostname or IP address")
        return v

    @field_validator("user")
    @classmethod
    def _user(cls, v: str) -> str:
        if not UNIX_USER.fullmatch(v):
            raise ValueError(f"'{v}' is not a valid Unix user name")
        if v == "root":
            raise ValueError("deploying as root is refused; create a 'deploy' user in the docker group")
        return v

    @field_validator("hostKey")
    @classmethod
    def _host_key(cls, v: Optional[str]) -> Optional[str]:
        if v is None:
            return v
        v = " ".join(v.split()[:2])   # drop a trailing comment, as in a known_hosts or .pub line
        if not HOST_KEY.fullmatch(v):
            raise ValueError("expected one public key line like 'ssh-ed25519 AAAAC3...' "
                             "(get it out of band, or compare `ssh-keyscan -t ed25519 HOST`)")
        return v

    @field_validator("dockerHost")
    @classmethod
    def _docker_host(cls, v: str) -> str:
        if v.startswith("tcp://"):
            raise ValueError("tcp:// engines are refused: webstack has no TLS settings for them and a plain tcp:// "
                             "engine is root for anyone who reaches the port; use the engine's unix:// socket, or "
                             "kind: ssh for another host")
        if not DOCKER_HOST.fullmatch(v):
            raise ValueError("must be unix:///path/to/docker.sock (letters, digits, '.', '_', '-' and '/' only; "
                             "ssh targets use kind: ssh)")
        return v

    @model_validator(mode="after")
    def _ssh_needs_host_and_key(self) -> "Target":
        if self.kind == "ssh":
            missing = [k for k in ("host", "hostKey") if getattr(self, k) is None]
            if missing:
                raise FieldProblem(missing[0], f"is required when target.kind is 'ssh' (missing: {', '.join(missing)})")
        return self


class Tls(Model):
    mode: Literal["off", "self-signed", "provided", "acme"] = "off"
    certificate: Optional[SecretStr] = None
    privateKey: Optional[SecretStr] = None
    acmeEmail: Optional[str] = None
    acmeServer: str = ACME_LETS_ENCRYPT
    # The CA of a private ACME server's own HTTPS certificate (step-ca, pebble): a public PEM, not a secret.
    acmeServerCa: Optional[str] = None
    ocspStapling: bool = False

    @model_validator(mode="after")
    def _fields_fit_mode(self) -> "Tls":
        if self.mode == "provided":
            missing = [k for k in ("certificate", "privateKey") if getattr(self, k) is None]
            if missing:
                raise FieldProblem(missing[0], f"is required when tls.mode is 'provided' (missing: {', '.join(missing)})")
        elif self.certificate is not None or self.privateKey is not None:
            raise FieldProblem("mode", f"is '{self.mode}', but certificate and privateKey are only used with 'provided'")
        if self.mode == "acme" and self.acmeEmail is None:
            raise FieldProblem("acmeEmail", "is required when tls.mode is 'acme' (the ACME account's contact)")
        if self.acmeEmail is not None and not EMAIL.fullmatch(self.acmeEmail):
            raise FieldProblem("acmeEmail", f"'{self.acmeEmail}' is not an e-mail address")
        if not ACME_URL.fullmatch(self.acmeServer):
            raise FieldProblem("acmeServer", f"'{self.acmeServer}' is not an https:// ACME directory URL (Let's "
                               f"Encrypt: {ACME_LETS_ENCRYPT}, staging: {ACME_LETS_ENCRYPT_STAGING})")
        if self.acmeServerCa is not None:
            problem = pem.check_ca_certificate(self.acmeServerCa)
            if problem:
                raise FieldProblem("acmeServerCa", problem)
        return self


S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
S3_PREFIX = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*\Z")
S3_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+){1,4}\Z")
ENDPOINT = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?/?\Z")
# UTC: "daily HH:MM", or "every N" minutes (m) or hours (h); "off" runs no scheduled backups.
# containers/backup/webstack_backup.py parses the same two forms.
BACKUP_SCHEDULE = re.compile(r"(off|daily ([01]\d|2[0-3]):[0-5]\d|every [1-9]\d{0,3}[mh])\Z")


class Offsite(Model):
    """An S3 bucket (or any S3 API) that receives a copy of every backup. Credentials: these two keys set with
    --secret (never plain config), else the job's own AWS chain on the target (e.g. an instance role); never the
    operator's environment."""

    bucket: str
    prefix: str = "webstack"
    region: str = "us-east-1"
    endpoint: Optional[str] = None
    accessKeyId: Optional[SecretStr] = None
    secretAccessKey: Optional[SecretStr] = None

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, v: str) -> str:
        if not S3_BUCKET.fullmatch(v):
            raise ValueError(f"'{v}' is not an S3 bucket name (3-63 lower-case letters, digits, '.' and '-')")
        return v

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        v = v.strip("/")
        if not S3_PREFIX.fullmatch(v):
            raise ValueError(f"'{v}' must be key parts of letters, digits, '_', '.' and '-' separated by '/'")
        return v

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        if not S3_REGION.fullmatch(v):
            raise ValueError(f"'{v}' is not a region name like 'eu-central-1'")
        return v

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not ENDPOINT.fullmatch(v):
            raise ValueError(f"'{v}' must be an URL like https://s3.example.com[:PORT] (no path); leave it unset for AWS")
        if v is not None and v.startswith("http://") and not is_loopback_endpoint(v):
            # The backups and the S3 keys would cross the network in clear text.
            raise ValueError(f"'{v}' is plain http:// to another machine; use https:// (pulumi config set --path "
                             "webstack:database.offsite.endpoint https://...); http:// is accepted only for a server "
                             "on the target's loopback (127.0.0.1, localhost)")
        return v

    @model_validator(mode="after")
    def _both_keys(self) -> "Offsite":
        if (self.accessKeyId is None) != (self.secretAccessKey is None):
            missing = "secretAccessKey" if self.secretAccessKey is None else "accessKeyId"
            raise FieldProblem(missing, "is required with the other key (set both with --secret, or neither and "
                               "let the job use the target's own AWS credentials, e.g. an instance role)")
        return self


class BackupRetention(Model):
    """How many backups of each kind stay, on the target and offsite (containers/backup/webstack_backup.py prunes
    each kind by its own count, the oldest first, never the newest of a kind). Kept apart so that a day of
    releases, each with its pre-deploy backup, cannot push out every scheduled backup (issue 21). Manual backups
    (`python -m ops backup`) count with the scheduled ones: both are restore points someone asked for at a time of
    their choosing, and a separate unbounded pile would fill the volume until the pre-deploy backup fails."""

    keepScheduled: int = Field(7, ge=1, le=365)
    keepPreDeploy: int = Field(5, ge=1, le=365)
    # A backup or restore job that runs longer is stopped and fails (the pre-deploy backup fails the update before
    # anything changes; `python -m ops` reports it): nothing waits forever (issue 20).
    timeoutSeconds: int = Field(3600, ge=60, le=86400)


class Pitr(Model):
    """Continuous archiving with pgBackRest for point-in-time recovery (issue 21): WAL shipped to the stack's backups
    volume as it fills (and at least every archiveTimeoutSeconds, so an idle database still archives), a base
    backup on database.backupSchedule, and a named restore point instead of a dump before each update."""

    enabled: bool = False
    # The recovery point objective while the database writes little: a WAL segment is archived at least this often.
    archiveTimeoutSeconds: int = Field(30, ge=10, le=3600)
    # Base backups kept; WAL is kept as long as the oldest of them needs it, so this bounds how far back
    # --to-time can go (keepFull x the schedule's interval).
    keepFull: int = Field(2, ge=1, le=100)


class Database(Model):
    name: str = "appdb"
    user: str = "app"
    backups: BackupRetention = BackupRetention()
    memoryMb: int = Field(512, ge=128)
    # CPUs the database may use; unset: no cap (a database capped at one core makes every query wait for it).
    cpus: Optional[float] = Field(None, gt=0, le=256)
    backupSchedule: str = "daily 03:15"
    offsite: Optional[Offsite] = None
    pitr: Pitr = Pitr()

    @field_validator("backupSchedule")
    @classmethod
    def _schedule(cls, v: str) -> str:
        v = " ".join(v.split())
        if not BACKUP_SCHEDULE.fullmatch(v):
            raise ValueError(f"'{v}' is not a schedule: use 'daily HH:MM' (UTC, e.g. 'daily 03:15'), 'every N' "
                             "with m or h (e.g. 'every 6h', 'every 30m'), or 'off'")
        return v

    @field_validator("name", "user")
    @classmethod
    def _sql_name(cls, v: str) -> str:
        if not SQL_NAME.fullmatch(v) or v == "postgres":
            raise ValueError(f"'{v}' must be a lower-case SQL identifier other than 'postgres'")
        return v

    @model_validator(mode="after")
    def _pitr_needs_base_backups(self) -> "Database":
        if self.pitr.enabled and self.backupSchedule == "off":
            # Without new base backups nothing could ever be expired: the archived WAL would grow until the disk fills.
            raise FieldProblem("backupSchedule", "is 'off', but pitr.enabled needs base backups on a schedule (e.g. "
                               "pulumi config set --path webstack:database.backupSchedule 'daily 03:15'), or set "
                               "database.pitr.enabled false")
        return self


class Build(Model):
    context: str
    dockerfile: str = "Dockerfile"
    cpus: float = Field(1.0, gt=0, le=256)   # CPUs each container may use (CIS 5.12: a runaway cannot take the host)


# Variables webstack sets itself for every backend (components/backend.py): no user key may shadow them.
RESERVED_ENV = ("PORT", "PGHOST", "PGDATABASE", "PGUSER")
VOLUME_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}\Z")   # part of a Docker volume name
MOUNT_PATH = re.compile(r"(/[A-Za-z0-9_.-]+)+\Z")            # absolute, no ':' or ',' (the --mount syntax)
RESERVED_MOUNTS = ("/tmp", "/var/run/postgresql", "/proc", "/sys", "/dev", "/etc")


class Backend(Build):
    context: str = "containers/backend"
    port: int = Field(8000, ge=1024, le=65535)
    healthPath: str = "/readiness"
    replicas: int = Field(1, ge=1, le=16)
    memoryMb: int = Field(256, ge=64)
    env: dict[str, str] = Field(default_factory=dict)
    # Set only with `pulumi config set --secret --path webstack:backend.secrets.NAME` (settings_loader refuses
    # plain text); delivered as environment variables, see docs/own-app.md.
    secrets: dict[str, SecretStr] = Field(default_factory=dict)
    # Names of values pulumi-random generates once per stack and keeps (e.g. DJANGO_SECRET_KEY).
    generatedSecrets: list[str] = Field(default_factory=list)
    # Runs once per release in a one-off container of the new image, before its backends start ([] = none).
    releaseCommand: list[str] = Field(default_factory=list)
    # A release command still running after this long is stopped and fails the update (a command that never
    # exits, e.g. a server started by mistake, held `pulumi up` until someone killed it).
    releaseTimeoutSeconds: int = Field(600, ge=5, le=86400)
    egress: bool = False   # also join a network with a route out of the host (the database never does)
    volumes: dict[str, str] = Field(default_factory=dict)   # name -> mount path: protected named volumes
    # Where the edge serves the backend: None = /api with a frontend, / without one.
    pathPrefix: Optional[str] = None
    stripPrefix: bool = True   # the backend sees /notes for /api/notes (False: the whole path)

    @field_validator("releaseCommand")
    @classmethod
    def _command(cls, v: list[str]) -> list[str]:
        if any(not part or "\0" in part for part in v):
            raise ValueError("every part must be a non-empty string, e.g. [\"node\", \"migrate.js\"]")
        return v

    @field_validator("pathPrefix")
    @classmethod
    def _prefix(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and (not URL_PATH.fullmatch(v) or (v != "/" and v.endswith("/")) or "//" in v):
            raise ValueError(f"'{v}' must be '/' or a URL path like '/api' (a leading '/', no trailing '/')")
        return v

    @field_validator("volumes")
    @classmethod
    def _volumes(cls, v: dict[str, str]) -> dict[str, str]:
        for name, path in v.items():
            if not VOLUME_NAME.fullmatch(name):
                raise ValueError(f"volume name '{name}' must be lower-case letters, digits, '_', '.' or '-'")
            if not MOUNT_PATH.fullmatch(path) or "/../" in f"{path}/" or "/./" in f"{path}/":
                raise ValueError(f"'{path}' (volume '{name}') must be an absolute path of plain characters")
            if any(path == r or path.startswith(r + "/") or r.startswith(path + "/") for r in RESERVED_MOUNTS):
                raise ValueError(f"'{path}' (volume '{name}') overlaps a path webstack or the kernel owns "
                                 f"({', '.join(RESERVED_MOUNTS)})")
        paths = list(v.values())
        clash = [p for p in paths if any(p != q and (p.startswith(q + "/")) for q in paths) or paths.count(p) > 1]
        if clash:
            raise ValueError(f"mount paths may not repeat or nest: {', '.join(sorted(set(clash)))}")
        return v

    @model_validator(mode="after")
    def _variable_names(self) -> "Backend":
        for key, names in (("env", list(self.env)), ("secrets", list(self.secrets)),
                           ("generatedSecrets", self.generatedSecrets)):
            bad = [n for n in names if not ENV_NAME.fullmatch(n)]
            if bad:
                raise FieldProblem(key, f"invalid variable name(s): {', '.join(bad)}")
            reserved = [n for n in names if n in RESERVED_ENV]
            if reserved:
                raise FieldProblem(key, f"{', '.join(reserved)} is set by webstack ({', '.join(RESERVED_ENV)}); "
                                   "choose another name")
        if len(set(self.generatedSecrets)) != len(self.generatedSecrets):
            raise FieldProblem("generatedSecrets", "lists a name twice")
        seen: dict[str, str] = {}
        for key, names in (("env", self.env), ("secrets", self.secrets), ("generatedSecrets", self.generatedSecrets)):
            for n in names:
                if n in seen:
                    raise FieldProblem(key, f"{n} is also in backend.{seen[n]}; a variable has one source")
                seen[n] = key
        return self

    def spec(self) -> dict:
        """What shapes the containers, without secret values (they apply with the next release)."""
        # The release command's timeout shapes no container: changing it is no new generation.
        return {**self.model_dump(exclude={"secrets", "releaseTimeoutSeconds"}), "secrets": sorted(self.secrets)}

    @field_validator("healthPath")
    @classmethod
    def _path(cls, v: str) -> str:
        if not URL_PATH.fullmatch(v):
            raise ValueError(f"'{v}' must be a URL path starting with '/'")
        return v



class Frontend(Build):
    context: str = "containers/web"
    enabled: bool = True   # False: a backend-only app, served at / (no web container)


IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")
# An older base misses security fixes for longer than any release cycle should: refused above three months.
BASE_IMAGE_MAX_AGE_DAYS = 90


class PinnedImages(Model):
    """The exact images of one release, set by `python -m ops rollback`: the release runs them, not a build."""

    release: str
    backend: str
    web: Optional[str] = None   # none for a backend-only app (frontend.enabled: false)

    @field_validator("backend", "web")
    @classmethod
    def _image_id(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not IMAGE_ID.fullmatch(v):
            raise ValueError(f"'{v}' is not an image ID (sha256:<64 hex digits>)")
        return v


class Images(Model):
    # The backend and web images of the newest `keep` releases stay on the target for rollbacks; older ones are
    # removed after each release (never one a container uses).
    keep: int = Field(5, ge=1, le=100)
    pinned: Optional[PinnedImages] = None


def is_within(path: str, prefix: str) -> bool:
    """`path` is `prefix` or lies below it, by whole segments ('/api/ws' is within '/api', '/apix' is not)."""
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def _edge_path(value: str) -> str:
    # The value becomes an nginx location: plain characters only, and one spelling per path.
    if not URL_PATH.fullmatch(value):
        raise ValueError(f"{value!r} must be a URL path starting with '/', of letters, digits, '/', '_', '.' and '-' "
                         "only (no spaces, quotes, ';', '{' or '}')")
    if value != "/" and any(part in ("", ".", "..") for part in value.split("/")[1:]):
        raise ValueError(f"{value!r} must be '/' or a path like '/api/ws': no trailing '/', no '//', '.' or '..'")
    return value


def _trusted_proxy(value: str) -> str:
    try:
        network = ipaddress.ip_network(value)
    except ValueError:
        try:
            meant = ipaddress.ip_network(value, strict=False)
        except ValueError:
            meant = None
        if meant is None or "%" in value:
            raise ValueError(f"{value!r} is not an IP address or a CIDR range like 10.0.0.0/8 or 2001:db8::/32 "
                             "(no zone id)") from None
        raise ValueError(f"{value!r} has bits set after the prefix length; the range is {meant}") from None
    if "%" in value:
        raise ValueError(f"{value!r} has a zone id; give the address or range alone")
    if network.prefixlen == 0:
        raise ValueError(f"{value!r} trusts every address, so any client could name its own address; list only the "
                         "proxies or load balancers in front of the edge")
    return str(network.network_address) if network.num_addresses == 1 else str(network)


def _extra_hostname(value: str) -> str:
    if not HOSTNAME.fullmatch(value):
        raise ValueError(f"{value!r} is not a hostname like www.example.com (no wildcard, scheme, port or path)")
    return value.lower()


EdgePath = Annotated[str, AfterValidator(_edge_path)]
TrustedProxy = Annotated[str, AfterValidator(_trusted_proxy)]
ExtraHostname = Annotated[str, AfterValidator(_extra_hostname)]
# The edge buffers each request body in its /tmp until the backend takes it (components/edge.py sizes /tmp and
# the memory limit from this); larger uploads belong in direct uploads to object storage, not through the proxy.
MAX_BODY_MB = 1024


class Edge(Model):
    """How the edge (nginx) takes requests in and hands them to the backend. Every default is the edge as it
    was before these keys existed, so a stack that sets none of them is served as before."""

    maxBodyMb: int = Field(1, ge=1, le=MAX_BODY_MB)           # largest request body; larger: the edge's 413
    readTimeoutSeconds: int = Field(60, ge=1, le=3600)         # the backend may be silent this long in a response
    sendTimeoutSeconds: int = Field(60, ge=1, le=3600)         # ... and take this long to read the next request part
    # Both timeouts at once, for the paths below: an open WebSocket or event stream is often quiet for minutes.
    streamTimeoutSeconds: int = Field(3600, ge=1, le=86400)
    # Paths within backend_prefix, each with everything below it (the prefix itself: the whole backend).
    websocketPaths: list[EdgePath] = Field(default_factory=list)   # handshakes (Upgrade) passed on
    streamingPaths: list[EdgePath] = Field(default_factory=list)   # server-sent events: not buffered
    # Proxies in front of the edge whose X-Forwarded-For is believed ([]: nobody's; the connection's address is
    # the client's).
    trustedProxies: list[TrustedProxy] = Field(default_factory=list)
    writeRatePerSecond: int = Field(10, ge=1, le=10000)    # POST/PUT/PATCH/DELETE per client address
    writeBurst: int = Field(20, ge=0, le=10000)            # writes above the rate accepted at once (0: none)
    aliases: list[ExtraHostname] = Field(default_factory=list)     # served like the domain, same certificate
    redirects: list[ExtraHostname] = Field(default_factory=list)   # 308 to the domain, path and query kept

    @model_validator(mode="after")
    def _each_value_once(self) -> "Edge":
        seen: dict[tuple[str, str], str] = {}
        for key in ("websocketPaths", "streamingPaths", "trustedProxies", "aliases", "redirects"):
            # A name is an alias or a redirect, not both: the two lists share one set of names.
            kind = "names" if key in ("aliases", "redirects") else key
            for index, value in enumerate(getattr(self, key)):
                earlier = seen.setdefault((kind, value), f"{key}[{index}]")
                if earlier != f"{key}[{index}]":
                    both = "" if earlier.startswith(key) else ": a name is an alias or a redirect, not both"
                    raise FieldProblem(f"{key}[{index}]", f"'{value}' is already edge.{earlier}{both}; list it once")
        return self


GENERATION_KEY_FIX = ("pulumi config set --secret webstack:generationKey "
                      "\"$(python3 -c 'import secrets; print(secrets.token_hex(32))')\"")


class Settings(Model):
    """Everything one stack needs, validated; built by settings_loader.load_settings."""

    stack: str
    # The Pulumi project's name: with the stack it names a deployment uniquely (offsite backups are kept under
    # <prefix>/<project>/<stack>, so two projects' `prod` stacks in one bucket stay apart).
    project: str
    projectDir: Path
    # Top-level keys set with --secret (`pulumi config set --secret --path webstack:backend.env.X` makes the whole
    # `backend` object secret): their values reach resources only as secret Outputs.
    secretKeys: frozenset[str] = frozenset()
    release: str
    domain: str = "localhost"
    httpPort: int = Field(8080, ge=1, le=65535)
    httpsPort: int = Field(8443, ge=1, le=65535)
    publishAddress: str = "127.0.0.1"
    baseImage: str = "debian:bookworm-slim"
    # The base image is refreshed (rebuilt, pulled or read on the host: components/base_image.py) at the first
    # `pulumi up` of each ISO week and rebuilt once it is older than this; every image on it is then rebuilt.
    baseImageMaxAgeDays: int = 7
    # Keys the generation digest (an HMAC, so a container name reveals nothing of what went into it). Required
    # once a secret shapes the containers: a `backend` set with --secret (its env values).
    generationKey: Optional[SecretStr] = None
    target: Target = Target()
    tls: Tls = Tls()
    database: Database = Database()
    backend: Backend = Backend()
    frontend: Frontend = Frontend()
    images: Images = Images()
    edge: Edge = Edge()

    @field_validator("stack")
    @classmethod
    def _stack(cls, v: str) -> str:
        # The name becomes a directory name under .webstack/ and part of every container name.
        if not STACK.fullmatch(v):
            raise ValueError("the stack name must be 1-100 letters, digits, '.', '_' or '-', starting with a "
                             "letter or digit; create the stack under such a name (pulumi stack init NAME)")
        return v

    @field_validator("project")
    @classmethod
    def _project(cls, v: str) -> str:
        # Part of every offsite key and of the backup job's environment.
        if not STACK.fullmatch(v):
            raise ValueError(f"the project name {v!r} must be 1-100 letters, digits, '.', '_' or '-', starting with "
                             "a letter or digit (name: in Pulumi.yaml)")
        return v

    @field_validator("release")
    @classmethod
    def _release(cls, v: str) -> str:
        if not RELEASE.fullmatch(v):
            raise ValueError(f"'{v}' must be 1-40 characters of letters, digits, '.', '_' or '-', "
                             "starting with a letter or digit (it becomes an image tag)")
        return v

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        if not HOSTNAME.fullmatch(v):
            raise ValueError(f"'{v}' is not a valid hostname")
        return v.lower()

    @field_validator("baseImage")
    @classmethod
    def _base_image(cls, v: str) -> str:
        if not IMAGE_REF.fullmatch(v):
            raise ValueError(f"{v!r} is not a Docker image reference ([registry[:port]/]name[:tag][@sha256:digest], "
                             "e.g. debian:bookworm-slim)")
        return v

    @field_validator("baseImageMaxAgeDays")
    @classmethod
    def _base_image_max_age(cls, v: int) -> int:
        if not 1 <= v <= BASE_IMAGE_MAX_AGE_DAYS:
            raise ValueError(f"{v} is not a number of days from 1 to {BASE_IMAGE_MAX_AGE_DAYS} (the base image is "
                             "rebuilt with Debian's security updates once it is older than this)")
        return v

    @field_validator("publishAddress")
    @classmethod
    def _address(cls, v: str) -> str:
        if not is_ip_address(v):
            raise ValueError(f"{v!r} is not an IP address without a zone id "
                             "(use 0.0.0.0 to publish on every interface)")
        return v

    @field_validator("generationKey")
    @classmethod
    def _generation_key(cls, v: Optional[SecretStr]) -> Optional[SecretStr]:
        if v is not None and len(v.get_secret_value()) < 32:
            raise ValueError("is shorter than 32 characters")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> "Settings":
        if "backend" in self.secretKeys and self.generationKey is None:
            raise FieldProblem("generationKey", "is required: webstack:backend is a secret, and its values shape the "
                               "generation digest in every container name, which must not reveal them")
        if self.httpPort == self.httpsPort:
            raise FieldProblem("httpsPort", f"is {self.httpsPort}, the same as httpPort; the two must differ")
        if self.frontend.enabled and self.backend.pathPrefix == "/":
            raise FieldProblem("backend.pathPrefix", "is '/', but the frontend serves '/'; use a prefix like "
                               "'/api', or set frontend.enabled to false for a backend-only app")
        pinned = self.pinned_images
        if pinned is not None and self.frontend.enabled and pinned.web is None:
            raise FieldProblem("images.pinned.web", f"is missing, but release {pinned.release} has a frontend: "
                               "roll back with `python -m ops rollback`, which pins both images")
        self._check_edge_paths()
        self._check_edge_names()
        return self

    def _check_edge_paths(self) -> None:
        """WebSocket and streaming paths lie within the backend's prefix: only the backend is proxied there (the
        frontend is static files, which hold no connection open)."""
        prefix = self.backend_prefix
        for key in ("websocketPaths", "streamingPaths"):
            for index, path in enumerate(getattr(self.edge, key)):
                if not is_within(path, prefix):
                    meant = prefix if path == "/" else prefix + path
                    raise FieldProblem(f"edge.{key}[{index}]", f"'{path}' is outside the backend's prefix "
                                       f"'{prefix}' (backend.pathPrefix), the only place the edge proxies to the "
                                       f"backend; did you mean '{meant}'? ('{prefix}' alone: the whole backend)")

    def _check_edge_names(self) -> None:
        for key in ("aliases", "redirects"):
            for index, name in enumerate(getattr(self.edge, key)):
                if name == self.domain:
                    raise FieldProblem(f"edge.{key}[{index}]", f"'{name}' is the domain itself; list only the "
                                       "other names")

    @property
    def backend_prefix(self) -> str:
        """The path the edge serves the backend under."""
        if self.backend.pathPrefix is not None:
            return self.backend.pathPrefix
        return "/api" if self.frontend.enabled else "/"

    @property
    def served_names(self) -> dict[str, str]:
        """Every name the edge answers over HTTPS with the stack's certificate, and what it is."""
        return {self.domain: "the domain", **{name: "the alias (edge.aliases)" for name in self.edge.aliases},
                **{name: "the redirect (edge.redirects)" for name in self.edge.redirects}}

    @property
    def name_prefix(self) -> str:
        return f"webstack-{self.stack}"

    @property
    def tls_enabled(self) -> bool:
        return self.tls.mode != "off"

    @property
    def url(self) -> str:
        if self.tls_enabled:
            return f"https://{self.domain}" + ("" if self.httpsPort == 443 else f":{self.httpsPort}")
        return f"http://{self.domain}" + ("" if self.httpPort == 80 else f":{self.httpPort}")

    @property
    def generation_key(self) -> Optional[str]:
        return self.generationKey.get_secret_value() if self.generationKey else None

    @property
    def pinned_images(self) -> Optional[PinnedImages]:
        """The images a rollback pinned, when they are this release's (a later release ignores them)."""
        pinned = self.images.pinned
        return pinned if pinned is not None and pinned.release == self.release else None

    def context_path(self, build: Build) -> Path:
        return (self.projectDir / build.context).resolve()


def check_build(settings: Settings, key: str) -> list[tuple[str, str]]:
    """Problems with a build context: (key path, message)."""
    build: Build = getattr(settings, key)
    context = settings.context_path(build)
    if not context.is_dir():
        return [(f"{key}.context", f"directory '{context}' does not exist")]
    if not (context / build.dockerfile).is_file():
        return [(f"{key}.dockerfile", f"'{build.dockerfile}' not found in {context}")]
    return []


def check_provided_tls(settings: Settings) -> list[tuple[str, str]]:
    tls = settings.tls
    if tls.mode != "provided" or tls.certificate is None or tls.privateKey is None:
        return []
    problems = pem.check_certificate(tls.certificate.get_secret_value(), tls.privateKey.get_secret_value(),
                                     settings.served_names)
    return [(f"tls.{field}", message) for field, message in problems]


def provided_tls_warnings(settings: Settings) -> list[str]:
    """Warnings that do not stop a deployment (a provided certificate close to expiry)."""
    tls = settings.tls
    if tls.mode != "provided" or tls.certificate is None:
        return []
    warning = pem.expiry_warning(tls.certificate.get_secret_value())
    return [f"webstack:tls.certificate: {warning}"] if warning else []
