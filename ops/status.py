"""`python -m ops status --stack NAME`: what runs now, per service, and how well."""

from __future__ import annotations

import argparse
import datetime as dt
import json

from components import contract
from ops import backup, stack as stacks
from ops.errors import OpsError
from ops.target import Target, settings_of

ROLE_ORDER = ("edge-ports", "edge", "web", "backend", "database")   # edge-ports: the holder of the edge's ports


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("status", help="containers, images, releases, health, uptime, restarts, certificate")
    parser.add_argument("--stack", required=True)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def since(started: str, now: dt.datetime) -> str:
    seconds = int((now - dt.datetime.fromisoformat(started[:26].rstrip("Z") + "+00:00")).total_seconds())
    days, rest = divmod(max(seconds, 0), 86400)
    return (f"{days}d " if days else "") + f"{rest // 3600}h{rest % 3600 // 60:02d}m{rest % 60:02d}s"


def service_rows(containers: list[dict], now: dt.datetime) -> list[dict]:
    rows = []
    for c in containers:
        labels, state = c["Config"]["Labels"] or {}, c["State"]
        running = state["Status"] == "running"
        rows.append({
            "service": labels.get("webstack.role", "?"), "container": c["Name"].lstrip("/"),
            "image": c["Config"]["Image"], "imageId": c["Image"][7:19], "release": labels.get("webstack.release", "-"),
            "state": state["Status"], "health": (state.get("Health") or {}).get("Status", "-"),
            "uptime": since(state["StartedAt"], now) if running else "-", "restarts": c["RestartCount"]})
    return sorted(rows, key=lambda r: (ROLE_ORDER.index(r["service"]) if r["service"] in ROLE_ORDER else 9,
                                       r["container"]))


def certificate_expiry(target: Target, edge: str) -> str:
    """The served certificate's expiry, read from the edge's live configuration."""
    from cryptography import x509

    try:
        # tls.mode acme: the edge reads the ACME container's published pair (components/contract.py).
        path = f"{contract.ACME_LIVE_DIR}/fullchain.pem" if target.settings.tls.mode == "acme" else \
            f"{contract.EDGE_CONFIG_DIR}/live/tls/fullchain.pem"
        pem = target.docker("exec", edge, "cat", path)
    except Exception:   # noqa: BLE001 - no TLS, or no edge: say so rather than fail the whole status
        return "no certificate served"
    cert = x509.load_pem_x509_certificate(pem.encode())
    left = cert.not_valid_after_utc - dt.datetime.now(dt.timezone.utc)
    return f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC ({left.days} days left)"


def last_backups(stack, target: Target, count: int = 3) -> tuple[list[dict] | str, str | None]:
    """The newest backups on the target (newest first), or why there are none to show; and with database.pitr the
    archive's state in one line."""
    try:
        found = backup.job(target, backup.backups_output(stack), ["list"])
    except OpsError as exc:
        return f"unknown ({exc})", None
    rows = [{"name": m["name"], "reason": m["reason"], "release": m["release"], "size": m["size"]}
            for m in reversed(found["backups"][-count:])] or "none yet"
    archiving = archiving_line(found["archiver"], len(found["baseBackups"])) if "archiver" in found else None
    return rows, archiving


def archiving_line(archiver: dict, base_backups: int) -> str:
    """The WAL archive's state in one line: how far behind it is, and any failure."""
    age = archiver.get("secondsSinceLastArchived")
    line = (f"archiving: last WAL segment {archiver.get('lastArchivedWal') or '-'} archived "
            f"{'-' if age is None else f'{age:.0f}s'} ago, {base_backups} base backup(s)")
    if archiver.get("failed"):
        line += (f"; {archiver['failed']} failed push(es), the last {archiver['lastFailedWal']} at "
                 f"{archiver['lastFailedAt']} (python -m ops logs database)")
    return line


def run(args: argparse.Namespace) -> int:
    stack = stacks.select(args.stack)
    target = Target(settings_of(stack))
    now = dt.datetime.now(dt.timezone.utc)
    rows = service_rows(target.containers(), now)
    edge = next((r["container"] for r in rows if r["service"] == "edge"), None)
    expiry = certificate_expiry(target, edge) if edge and target.settings.tls_enabled else "TLS off"
    backups, archiving = last_backups(stack, target) if rows else ("-", None)
    if args.json:
        print(json.dumps({"stack": args.stack, "services": rows, "certificate": expiry, "backups": backups,
                          "archiving": archiving}, indent=2))
        return 0
    print(f"stack {args.stack} on {target.settings.target.kind} target; certificate: {expiry}")
    columns = ("service", "container", "release", "imageId", "state", "health", "uptime", "restarts")
    widths = {c: max([len(c)] + [len(str(r[c])) for r in rows]) for c in columns}
    print("  ".join(c.upper().ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))
    if not rows:
        print("(no containers: the stack is not deployed on its target)")
    elif isinstance(backups, str):
        print(f"last backups: {backups}")
    else:
        print("last backups: " + "; ".join(f"{b['name']} ({b['reason']}, release {b['release'] or '-'}, "
                                           f"{backup.megabytes(b['size'])})" for b in backups))
    if archiving:
        print(archiving)
    return 0
