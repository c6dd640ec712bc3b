#!/bin/sh
# webstack-edge-certs: reloads nginx when the ACME container publishes a new certificate (tls.mode acme).
#
#   webstack-edge-certs watch    started next to nginx by the image's CMD: checks every few seconds
#   webstack-edge-certs reload   once, now (`pulumi up` runs it after the first issuance)
#
# The ACME container's volume is mounted read-only at /var/lib/webstack-acme; certs/live is a symlink it
# switches atomically to a new certificate directory. A change is loaded by `nginx -s reload` (graceful: old
# workers finish their requests), after `nginx -t`; a pair nginx rejects is logged and the old one keeps serving.
# Without the volume (other TLS modes) `watch` exits at once.
set -u
LIVE=/var/lib/webstack-acme/certs/live
LOCK=/etc/webstack/edge/.apply.lock     # webstack-edge-apply's: a reload never interleaves with an apply
INTERVAL=${WEBSTACK_EDGE_CERTS_INTERVAL:-5}

log() {   # from a `docker exec` also to the container's log
  echo "webstack-edge-certs: $*" >&2
  if [ "$$" != 1 ] && [ "$PPID" != 1 ]; then echo "webstack-edge-certs: $*" > /proc/1/fd/2 2>/dev/null || true; fi
}

reload() {   # $1: the certificate directory being loaded (for the log)
  exec 9>"$LOCK"
  flock -w 60 9 || { log "webstack-edge-apply holds the lock for 60 s; will try again"; return 1; }
  if ! out=$(nginx -t 2>&1); then
    log "nginx rejected the configuration with certificate $1; the previous certificate keeps serving: $out"
    exec 9>&-
    return 1
  fi
  nginx -s reload && log "reloaded nginx for certificate $1"
  exec 9>&-
}

case "${1:-}" in
  watch)
    [ -d /var/lib/webstack-acme ] || exit 0
    loaded=$(readlink "$LIVE" 2>/dev/null || true)
    while sleep "$INTERVAL"; do
      current=$(readlink "$LIVE" 2>/dev/null || true)
      if [ -n "$current" ] && [ "$current" != "$loaded" ] && reload "$current"; then loaded=$current; fi
    done
    ;;
  reload) reload "$(readlink "$LIVE" 2>/dev/null || echo none)" ;;
  *) echo "usage: webstack-edge-certs watch|reload" >&2; exit 2 ;;
esac
