"""webstack: PostgreSQL, a backend API and a static frontend behind an nginx edge, on Docker.

Reads like a table of contents: load settings (all validation happens here, before any resource exists),
declare the components, export what operators need.
"""

from pathlib import Path

import pulumi

from components.acme import Acme, AcmeArgs
from components.app_secrets import AppSecrets
from components.app_volumes import AppVolumes
from components.archiving import Archiving, ArchivingArgs
from components.backend import Backend, BackendArgs, generation, probe_url
from components.backups import Backups, BackupsArgs
from components.base_image import BaseImage, BaseImageArgs, iso_week, utc_today
from components.certificates import Certificates
from components.database import Database, DatabaseArgs
from components.edge import Edge, EdgeArgs
from components.images import Images
from components.networks import Networks
from components import orphans
from components.pids_limits import PidsLimits
from components.release_command import ReleaseCommand, ReleaseCommandArgs
from components.release_gate import ReleaseGate
from components.remote_host import RemoteHost
from components.settings_loader import settings_from_pulumi
from components.socket_volume import SocketVolume
from components.web import Web, WebArgs

settings = settings_from_pulumi(Path(__file__).resolve().parent)
orphans.attach(settings)   # an interrupted update's leftover containers never block the next one

host = RemoteHost("host", settings)
on_target = pulumi.ResourceOptions(providers={"docker": host.provider})

# Images build only once the host is prepared (the Provider they use depends on `host.ready`) and its base image is
# refreshed: at the first `up` of each ISO week; every image on a new base is rebuilt.
base_image = BaseImage("base-image", BaseImageArgs(settings, host, week=iso_week(utc_today())))
images = Images("images", settings, host, base_image, on_target)
networks = Networks("networks", settings, on_target)
socket = SocketVolume("pgsocket", settings, on_target)
certificates = Certificates("certificates", settings)

app_secrets = AppSecrets("app-secrets", settings)
app_volumes = AppVolumes("app-volumes", settings, host, on_target)
# A backup (with the app's volumes) before the database container is replaced, a release command runs or a new
# backend generation (which may migrate at start) starts.
backups = Backups("backups", BackupsArgs(settings, images.backup, images.backup_ref, host, socket,
                                         triggers=[generation(settings)], volumes=app_volumes.names,
                                         database_image=images.database_ref,
                                         database_image_id=images.database.image_id), on_target)
database = Database("database", DatabaseArgs(settings, images.database, networks.data, socket,
                                             after=[backups.pre_deploy]), on_target)
backups.start_schedule(database.container)
archiving = Archiving("archiving", ArchivingArgs(settings, host, images.backup_ref, database.container),
                      on_target) if settings.database.pitr.enabled else None
acme = Acme("acme", AcmeArgs(settings, images.acme, networks.public), on_target) if images.acme else None
edge = Edge("edge", EdgeArgs(settings, images.edge, networks.app, networks.public, host, acme), on_target)
# What a release waits for before it changes anything: none of its containers starts before the pre-deploy backup
# (which also runs before the database container) and a rollback's check that its images are there; the release
# command and the new backends also wait for the database.
before_containers: list[pulumi.Resource] = [backups.pre_deploy, *images.before_containers]
before_release = [*before_containers, database.container]
before_backends = list(before_release)
if settings.backend.releaseCommand:
    release_command = ReleaseCommand("release-command", ReleaseCommandArgs(
        settings, host, images.refs["backend"], generation(settings), networks, socket, app_secrets, app_volumes,
        depends_on=before_release))
    before_backends.append(release_command.run)
backend = Backend("backend", BackendArgs(settings, images.refs["backend"], networks, socket, database.container,
                                         app_secrets, app_volumes, depends_on=before_backends), on_target)
web = Web("web", WebArgs(settings, images.refs["web"], networks.app, depends_on=before_containers),
          on_target) if settings.frontend.enabled else None
gate = ReleaseGate("release-gate", host, f"{backend.generation}-{web.generation if web else 'noweb'}",
                   [*backend.names, *([web.container_name] if web else [])],
                   [*backend.containers, *([web.container] if web else [])],
                   probes={**{n: probe_url(settings, n) for n in backend.names},
                           **({web.container_name: web.probe_url} if web else {})}, edge=edge.container,
                   edge_name=edge.container.name)
switch = edge.route_to(backend, web, certificates, gate)
if acme:
    acme.issue_after(switch, host, settings, edge.container.name)
# The containers that live across releases (their images are long-lived too).
long_lived = [database.container, edge.holder, edge.container, *([acme.container] if acme else []),
              *([backups.schedule] if backups.schedule else [])]
images.prune_after(gate.check, after=long_lived)
PidsLimits("pids-limits", host, [*long_lived, *backend.containers, *([web.container] if web else [])])

pulumi.export("url", settings.url)
pulumi.export("release", settings.release)
# Every long-lived container of the stack: after any update (an interrupted one too, once the next completes)
# these are exactly the stack's containers on the target.
pulumi.export("containers", {"database": database.container.name, "edge": edge.container.name,
                             "edgePorts": edge.holder.name, "backend": backend.names,
                             "web": web.container_name if web else None,
                             **({"backup": backups.schedule.name} if backups.schedule else {}),
                             **({"acme": acme.container_name} if acme else {})})
pulumi.export("dataVolume", database.data_volume.name)
pulumi.export("appVolumes", backend.app_volumes)
pulumi.export("backups", {"image": images.backup_ref, "volume": backups.volume.name, "appVolumes": app_volumes.names})
pulumi.export("backupSigningKey", pulumi.Output.secret(backups.signing_key.result))   # for python -m ops backup/restore
