"""The borrower's phone app: a mobile web app served at `/app`, signing with a wallet that stays on the phone.

`GET /app` is the shell (api/static/app/index.html); every other file it loads comes from `/app/<path>`: the
files under api/static/app (listed once, when the module loads: nothing else under api/ can be read through it),
and `vendor/ethers-<version>.min.js`, the signing library from npm (api.web_assets). The service worker is
`/app/sw.js`, so its scope is the app. The app is static: it talks to this API's /v1 routes with the borrower's
token, like any client, and so can do exactly what a borrower's token allows.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from fastapi.responses import RedirectResponse, Response

from api.errors import not_found
from api.web_assets import LIBRARY_CACHE, MEDIA_TYPES, SECURITY_HEADERS, libraries

router = APIRouter()

SHELL = "index.html"


def _walk(folder: Traversable, prefix: str = "") -> dict[str, Traversable]:
    files: dict[str, Traversable] = {}
    for entry in folder.iterdir():
        if entry.is_dir():
            files.update(_walk(entry, f"{prefix}{entry.name}/"))
        elif "." + entry.name.rsplit(".", 1)[-1] in MEDIA_TYPES:
            files[prefix + entry.name] = entry
    return files


FILES = _walk(resources.files("api").joinpath("static", "app"))


def _media_type(name: str) -> str:
    return MEDIA_TYPES["." + name.rsplit(".", 1)[-1]]


@router.get("/app", include_in_schema=False)
def shell_without_slash() -> Response:
    return RedirectResponse("/app/", status_code=308)  # relative paths in the shell resolve under /app/


@router.get("/app/", include_in_schema=False)
def shell() -> Response:
    return Response(FILES[SHELL].read_bytes(), media_type=_media_type(SHELL), headers=SECURITY_HEADERS)


@router.get("/app/{path:path}", include_in_schema=False)
def app_file(path: Annotated[str, PathParam(max_length=128)]) -> Response:
    if path in FILES:
        return Response(FILES[path].read_bytes(), media_type=_media_type(path), headers=SECURITY_HEADERS)
    library = libraries().get(path.removeprefix("vendor/")) if path.startswith("vendor/") else None
    if library is None or not library.is_file():
        raise not_found(f"app file {path!r}")
    return Response(library.read_bytes(), media_type=MEDIA_TYPES[".js"],
                    headers={**SECURITY_HEADERS, "cache-control": LIBRARY_CACHE})
