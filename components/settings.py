"""The validated, frozen settings of one stack: the only place that knows what configuration means.

Field names are the camelCase keys users type (`pulumi config set --path webstack:backend.healthPath ...`), so
that every error can name the exact key. Defaults here and in Pulumi.yaml's `config:` block must agree;
tests/test_settings_defaults.py holds them to it.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from . import pem

# Every pattern is used with fullmatch and ends in \Z: `$` also matches before a trailing newline ("v1\n").
HOSTNAME = re.compile(r"(?=.{1,253}\Z)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\Z", re.I)
RELEASE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,39}\Z")    # a valid image tag and container-name part
STACK = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")      # a file name and a container-name part
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
    ocspStapling: bool = False

    @model_validator(mode="after")
    def _fields_fit_mode(self) -> "Tls":
        if self.mode == "provided":
            missing = [k for k in ("certificate", "privateKey") if getattr(self, k) is None]
            if missing:
                raise FieldProblem(missing[0], f"is required when tls.mode is 'provided' (missing: {', '.join(missing)})")
        elif self.certificate is not None or self.privateKey is not None:
            raise FieldProblem("mode", f"is '{self.mode}', but certificate and privateKey are only used with 'provided'")
        if self.mode == "acme":
            raise FieldProblem("mode", "'acme' is not supported yet; use 'provided' with a certificate from your CA "
                               "(or certbot), or 'self-signed'")
        if self.acmeEmail is not None and "@" not in self.acmeEmail:
            raise FieldProblem("acmeEmail", f"'{self.acmeEmail}' is not an e-mail address")
        return self


S3_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\Z")
S3_PREFIX = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*\Z")
S3_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+){1,4}\Z")
ENDPOINT = re.compile(r"https?://[A-Za-z0-9.-]+(:\d{1,5})?/?\Z")
# UTC: "daily HH:MM", or "every N" minutes (m) or hours (h); "off" runs no scheduled backups.
# containers/backup/webstack_backup.py parses the same two forms.
BACKUP_SCHEDULE = re.compile(r"(off|daily ([01]\d|2[0-3]):[0-5]\d|every [1-9]\d{0,3}[mh])\Z")


class Offsite(Model):
    """An S3 bucket (or any S3 API) that receives a copy of every backup. Credentials: the environment
    (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or these two keys set with --secret, never plain config."""

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
        return v

    @model_validator(mode="after")
    def _both_keys(self) -> "Offsite":
        if (self.accessKeyId is None) != (self.secretAccessKey is None):
            missing = "secretAccessKey" if self.secretAccessKey is None else "accessKeyId"
            raise FieldProblem(missing, "is required with the other key (set both with --secret, or neither and "
                               "use AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment)")
        return self


class Database(Model):
    name: str = "appdb"
    user: str = "app"
    backupsToKeep: int = Field(7, ge=1, le=365)
    memoryMb: int = Field(512, ge=128)
    backupSchedule: str = "daily 03:15"
    offsite: Optional[Offsite] = None

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


class Build(Model):
    context: str
    dockerfile: str = "Dockerfile"


class Backend(Build):
    context: str = "containers/backend"
    port: int = Field(8000, ge=1024, le=65535)
    healthPath: str = "/readiness"
    replicas: int = Field(1, ge=1, le=16)
    memoryMb: int = Field(256, ge=64)
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("healthPath")
    @classmethod
    def _path(cls, v: str) -> str:
        if not URL_PATH.fullmatch(v):
            raise ValueError(f"'{v}' must be a URL path starting with '/'")
        return v

    @field_validator("env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [k for k in v if not ENV_NAME.fullmatch(k)]
        if bad:
            raise ValueError(f"invalid variable name(s): {', '.join(bad)}")
        return v


class Frontend(Build):
    context: str = "containers/web"


IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}")


class PinnedImages(Model):
    """The exact images of one release, set by `python -m ops rollback`: the release runs them, not a build."""

    release: str
    backend: str
    web: str

    @field_validator("backend", "web")
    @classmethod
    def _image_id(cls, v: str) -> str:
        if not IMAGE_ID.fullmatch(v):
            raise ValueError(f"'{v}' is not an image ID (sha256:<64 hex digits>)")
        return v


class Images(Model):
    # The backend and web images of the newest `keep` releases stay on the target for rollbacks; older ones are
    # removed after each release (never one a container uses).
    keep: int = Field(5, ge=1, le=100)
    pinned: Optional[PinnedImages] = None


class Settings(Model):
    """Everything one stack needs, validated; built by settings_loader.load_settings."""

    stack: str
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
    target: Target = Target()
    tls: Tls = Tls()
    database: Database = Database()
    backend: Backend = Backend()
    frontend: Frontend = Frontend()
    images: Images = Images()

    @field_validator("stack")
    @classmethod
    def _stack(cls, v: str) -> str:
        # The name becomes a directory name under .webstack/ and part of every container name.
        if not STACK.fullmatch(v):
            raise ValueError("the stack name must be 1-100 letters, digits, '.', '_' or '-', starting with a "
                             "letter or digit; create the stack under such a name (pulumi stack init NAME)")
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

    @field_validator("publishAddress")
    @classmethod
    def _address(cls, v: str) -> str:
        if not is_ip_address(v):
            raise ValueError(f"{v!r} is not an IP address without a zone id "
                             "(use 0.0.0.0 to publish on every interface)")
        return v

    @model_validator(mode="after")
    def _cross_checks(self) -> "Settings":
        if self.httpPort == self.httpsPort:
            raise FieldProblem("httpsPort", f"is {self.httpsPort}, the same as httpPort; the two must differ")
        return self

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
                                     settings.domain)
    return [(f"tls.{field}", message) for field, message in problems]


def provided_tls_warnings(settings: Settings) -> list[str]:
    """Warnings that do not stop a deployment (a provided certificate close to expiry)."""
    tls = settings.tls
    if tls.mode != "provided" or tls.certificate is None:
        return []
    warning = pem.expiry_warning(tls.certificate.get_secret_value())
    return [f"webstack:tls.certificate: {warning}"] if warning else []
