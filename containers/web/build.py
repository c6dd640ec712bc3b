#!/usr/bin/env python3
"""Fingerprints the page's assets so that they can be cached forever (stdlib only; run in the image's build stage).

    build.py SRC OUT

Every .js and .css file in SRC is written to OUT as NAME.<hash>.EXT (hash: the first 12 hex digits of its
SHA-256), and every .html file is written with its references ("/app.js") rewritten to the hashed names.
A change to an asset changes its name, so browsers never combine a stale asset with a new page.
"""

import hashlib
import shutil
import sys
from pathlib import Path

FINGERPRINTED = {".js", ".css"}


def build(src: Path, out: Path) -> dict[str, str]:
    out.mkdir(parents=True, exist_ok=True)
    renamed = {}
    for asset in sorted(p for p in src.iterdir() if p.suffix in FINGERPRINTED):
        digest = hashlib.sha256(asset.read_bytes()).hexdigest()[:12]
        hashed = f"{asset.stem}.{digest}{asset.suffix}"
        shutil.copyfile(asset, out / hashed)
        renamed[asset.name] = hashed
    pages = sorted(src.glob("*.html"))
    if not pages:
        raise SystemExit(f"error: no .html page in {src}")
    referenced = set()
    for page in pages:
        html = page.read_text(encoding="utf-8")
        for name, hashed in renamed.items():
            # Only quoted absolute references, the form index.html uses: "/app.js".
            if f'"/{name}"' in html:
                html = html.replace(f'"/{name}"', f'"/{hashed}"')
                referenced.add(name)
        (out / page.name).write_text(html, encoding="utf-8")
    unreferenced = sorted(set(renamed) - referenced)
    if unreferenced:
        raise SystemExit(f"error: no page references {', '.join(unreferenced)} as \"/NAME\"; fix the page or remove the file")
    return renamed


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    for name, hashed in build(Path(sys.argv[1]), Path(sys.argv[2])).items():
        print(f"{name} -> {hashed}")
