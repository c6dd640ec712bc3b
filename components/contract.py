"""Facts shared by the program and the images in containers/.

The Dockerfiles hard-code the same numbers (they cannot import Python); tests/live/test_images.py checks that
the built images agree with this module, so a change here that the images miss fails a test.
"""

BACKEND_UID = 1001          # the backend's OS user; PostgreSQL maps it to the database role by peer auth
BACKEND_OS_USER = "backend"  # its name in /etc/passwd of both the backend and the database image
DBSOCK_GID = 1500           # group owning the socket directory; postgres and the backend are members
POSTGRES_UID = 999
POSTGRES_OS_USER = "postgres"  # uid 999's name in the database image: the backup job, mapped to the stack's role to restore
NGINX_UID = 101             # edge and web run nginx as this unprivileged user

SOCKET_DIR = "/var/run/postgresql"
PGDATA = "/var/lib/postgresql/data"
POSTGRES_CONF_DIR = "/etc/postgresql/webstack"

WEB_PORT = 8080             # unprivileged ports inside; the edge publishes the user's ports outside
EDGE_HTTP_PORT = 8080
EDGE_HTTPS_PORT = 8443
# Every edge listens on the published ports with SO_REUSEPORT in the network namespace of one long-lived holder
# (components/edge.py), so an old and a new edge can serve side by side. What must reach one edge only (its health
# check, the switch's checks, the canary) goes through Unix sockets in that edge's own /tmp (a per-container tmpfs).
EDGE_HTTP_SOCKET = "/tmp/webstack-edge-http.sock"
EDGE_HTTPS_SOCKET = "/tmp/webstack-edge-https.sock"
EDGE_CANARY_SOCKET = "/tmp/webstack-edge-canary.sock"   # a release is checked through it before the switch
EDGE_CONFIG_DIR = "/etc/webstack/edge"   # a volume: survives edge restarts, rewritten on each switch
EDGE_HEALTH_PATH = "/__edge/health"
EDGE_APPLY_COMMAND = "/usr/local/bin/webstack-edge-apply"

ACME_UID = 1002             # the ACME client's user, in NGINX_UID's group: the edge reads its published certificate
ACME_DIR = "/var/lib/webstack-acme"      # its volume; mounted read-only in the edge at the same path
ACME_LIVE_DIR = f"{ACME_DIR}/certs/live"  # fullchain.pem and privkey.pem, switched atomically on renewal
ACME_WEBROOT = f"{ACME_DIR}/webroot"     # the HTTP-01 challenge files the edge serves on port 80
ACME_COMMAND = "/usr/local/bin/webstack-acme"
EDGE_CERTS_COMMAND = "/usr/local/bin/webstack-edge-certs"
