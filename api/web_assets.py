"""What the browser pages (the dashboard, the borrower app) are served with: their security headers and the one
library they import, `ethers` from npm (pinned in package.json, installed by `make setup`), its single-file ES
module build served from node_modules as it ships, no build step. Its name carries the installed version, so
browsers may keep it a year and still fetch a new one on upgrade."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from ledger.manifest import ROOT

# Scripts, styles, fetches, workers and the manifest from this origin only: the pages load nothing from the
# internet and run no inline script.
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; manifest-src 'self'; worker-src 'self'; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",  # a new version of a page is picked up at once
}
LIBRARY_CACHE = "public, max-age=31536000, immutable"  # the name changes with the version
ETHERS = ROOT / "node_modules" / "ethers"
MEDIA_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
               ".css": "text/css; charset=utf-8", ".json": "application/json",
               ".webmanifest": "application/manifest+json", ".svg": "image/svg+xml", ".png": "image/png"}


def static_file(*parts: str) -> bytes:
    return resources.files("api").joinpath("static", *parts).read_bytes()


def libraries() -> dict[str, Path]:
    """{served name: file} for the installed ethers; empty when node_modules lacks it: the server still starts,
    a page's script fails to load (its import answers 404) until `make setup` installs it."""
    try:
        version = json.loads((ETHERS / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return {}
    return {f"ethers-{version}.min.js": ETHERS / "dist" / "ethers.min.js"}
