#!/bin/sh
# webstack-edge-apply (contract.EDGE_APPLY_COMMAND): installs a new edge configuration, or refuses it.
#
#   docker exec -i EDGE webstack-edge-apply [--stage] < BUNDLE
#
# With --stage, only the bundle's canary.site is loaded (from stage/, beside the live site, which keeps serving):
# a server on the edge's loopback with the new release's routes, for the edge switch to check the release through
# before the switch. The next apply without --stage removes it.
#
# BUNDLE is a base64 tar (components.rendering.edge_bundle): site.conf, and with TLS tls/fullchain.pem and
# tls/privkey.pem. It is unpacked into next/, which becomes live/ (the old live/ kept as prev/); if `nginx -t`
# rejects it, the old live/ is put back and nginx's error printed, and the running nginx is never touched.
# Runs as uid 101 on a read-only root: it writes only to the config volume.
set -eu

DIR=/etc/webstack/edge
fail() { echo "edge: error: $*" >&2; exit 1; }
case "${1:-}" in
  --stage) mode=stage ;;
  "") mode=live ;;
  *) fail "usage: webstack-edge-apply [--stage] < BUNDLE" ;;
esac

cd "$DIR" || fail "$DIR is missing; mount the edge's config volume there"
umask 027     # the private key stays unreadable for others

# One apply at a time: a second caller waits instead of interleaving renames.
exec 9>"$DIR/.apply.lock"
flock -w 60 9 || fail "another webstack-edge-apply still runs after 60 s"

rm -rf next rejected
mkdir next
base64 -d > next.tar || { rm -f next.tar; fail "stdin is not base64 (expected the output of edge_bundle)"; }
# Only regular files at relative paths without '..': a bundle cannot write outside next/.
listing=$(tar -tvf next.tar) || { rm -f next.tar; fail "stdin is not a tar archive"; }
if printf '%s\n' "$listing" | grep -qv '^-'; then rm -f next.tar; fail "the bundle may hold regular files only"; fi
if tar -tf next.tar | grep -Eq '^/|(^|/)\.\.(/|$)'; then rm -f next.tar; fail "the bundle holds an unsafe path"; fi
tar -xf next.tar -C next --no-same-owner --no-same-permissions
rm -f next.tar
if [ "$mode" = stage ]; then
  [ -f next/canary.site ] || fail "the bundle has no canary.site"
  rm -rf stage
  mv next stage
  restore() { rm -rf stage; }
else
  [ -f next/site.conf ] || fail "the bundle has no site.conf"
  # Swap; restore() undoes it. An empty volume (a bind mount, say) has no live/ to keep. The canary of this
  # release has done its job.
  rm -rf prev stage
  if [ -d live ]; then mv live prev; fi
  mv next live
  restore() {
    mv live rejected    # kept for inspection until the next apply
    if [ -d prev ]; then mv prev live; fi
  }
fi
if ! output=$(nginx -t 2>&1); then
  restore
  printf '%s\n' "$output" >&2
  fail "nginx rejected the new configuration; the previous one is still serving"
fi
# The reload is asynchronous: wait until every worker is a new one, i.e. the master accepted the new
# configuration. If it did not (a port it cannot bind, say), restore the files matching what still serves.
workers() {   # pids of the master's workers that are not shutting down; /proc because procps is absent
  master=$(cat /tmp/nginx.pid)
  for proc in /proc/[0-9]*; do
    [ "$(cut -d' ' -f4 "$proc/stat" 2>/dev/null)" = "$master" ] || continue
    [ "$(tr '\0' ' ' < "$proc/cmdline" 2>/dev/null)" = "nginx: worker process " ] && echo "${proc#/proc/}"
  done
  return 0
}
old_workers=" $(workers | tr '\n' ' ') "
nginx -s reload || { restore; fail "could not signal nginx to reload (is it running?); nothing changed"; }
tries=0
while :; do
  current=$(workers)
  replaced=yes
  for pid in $current; do case "$old_workers" in *" $pid "*) replaced=no ;; esac; done
  if [ -n "$current" ] && [ "$replaced" = yes ]; then break; fi
  tries=$((tries + 1))
  if [ "$tries" -gt 100 ]; then
    restore
    fail "nginx did not load the new configuration within 10 s (see the edge's log); the previous one is still serving"
  fi
  sleep 0.1
done
if [ "$mode" = stage ]; then echo "edge: canary loaded beside the live configuration"; else echo "edge: configuration applied"; fi
