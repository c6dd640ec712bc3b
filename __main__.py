"""webstack: PostgreSQL, a backend API and a static frontend behind an nginx edge, on Docker.

Reads like a table of contents: load settings (all validation happens here, before any resource exists),
declare the components, export what operators need.
"""

from pathlib import Path

import pulumi

from components.backend import Backend, BackendArgs, generation
from components.backups import Backups, BackupsArgs
from components.certificates import Certificates
from components.database import Database, DatabaseArgs
from components.edge import Edge, EdgeArgs
from components.images import Images
from components.networks import Networks
from components.release_gate import ReleaseGate
from components.remote_host import RemoteHost
from components.settings_loader import settings_from_pulumi
from components.socket_volume import SocketVolume
from components.web import Web, WebArgs

settings = settings_from_pulumi(Path(__file__).resolve().parent)

host = RemoteHost("host", settings)
on_target = pulumi.ResourceOptions(providers={"docker": host.provider})

# Images build only once the host is prepared: the Provider they use depends on `host.ready`.
images = Images("images", settings, host, on_target)
networks = Networks("networks", settings, on_target)
socket = SocketVolume("pgsocket", settings, on_target)
certificates = Certificates("certificates", settings)

# A backup before the database container is replaced or a new backend generation (which migrates) starts.
# App volumes (backend.volumes) join `volumes=` once they exist; a release command joins `triggers=`.
backups = Backups("backups", BackupsArgs(settings, images.backup, images.backup_ref, host, socket,
                                         triggers=[generation(settings)], volumes=()), on_target)
database = Database("database", DatabaseArgs(settings, images.database, networks.data, socket,
                                             after=[backups.pre_deploy]), on_target)
edge = Edge("edge", EdgeArgs(settings, images.edge, networks.app, networks.public, host), on_target)
backend = Backend("backend", BackendArgs(settings, images.refs["backend"], networks.data, networks.app, socket,
                                         database.container), on_target)
web = Web("web", WebArgs(settings, images.refs["web"], networks.app), on_target)
gate = ReleaseGate("release-gate", host, f"{backend.generation}-{web.generation}", [*backend.names, web.container_name],
                   [*backend.containers, web.container])
switch = edge.route_to(backend, web, certificates, gate)
images.prune_after(switch)

pulumi.export("url", settings.url)
pulumi.export("release", settings.release)
pulumi.export("containers", {"database": database.container.name, "edge": edge.container.name,
                             "backend": backend.names, "web": web.container_name})
pulumi.export("dataVolume", database.data_volume.name)
pulumi.export("backups", {"image": images.backup_ref, "volume": backups.volume.name, "appVolumes": []})
