"""The review web app (Starlette): a static page and a small JSON API over one analysis folder.

Routes
------
``GET /``                               the page (static/index.html)
``GET /api/images``                     image list with counts
``GET /api/images/{name}``              one image: size, calibration, circles, version
``GET /api/images/{name}/pixels?max=N`` the image as JPEG, long side at most N (0: full size)
``POST /api/images/{name}/save``        {"version": ..., "circles": [{"id", "x", "y", "r"}, ...]}

Errors are JSON ``{"error": "..."}`` with 400 (malformed), 404 (unknown image or route), 409 (stale
version, missing source image) or 413 (body too large); they change nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from srpsa.errors import SrpsaError
from srpsa.review.folder import UnknownImage, circles_payload, display_jpeg, get_image, list_images, read_particles, version_of
from srpsa.review.save import BadRequest, Conflict, save_image

STATIC = Path(__file__).with_name("static")
MAX_BODY = 32 * 1024 * 1024  # 200k circles as JSON fit comfortably
log = logging.getLogger(__name__)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(root: Path) -> Starlette:
    """The app serving ``root`` (an analyze --out folder, already checked)."""
    root = Path(root).resolve()

    def entry_or_404(name: str):
        try:
            return get_image(root, name)
        except UnknownImage as exc:
            raise HTTPException(404, str(exc)) from exc

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def images(request: Request) -> Response:
        rows = []
        for name, e in list_images(root).items():
            rows.append({"name": name, "count": e.summary.get("count"), "count_used": e.summary.get("count_used"),
                         "unit": e.summary.get("unit"), "reviewed": e.reviewed, "image_ok": e.image_ok,
                         "d50": (e.summary.get("statistics") or {}).get("Q0", {}).get("d50")})
        return JSONResponse({"folder": str(root), "images": rows})

    async def image(request: Request) -> Response:
        e = entry_or_404(request.path_params["name"])
        try:
            table = read_particles(e)
        except (SrpsaError, OSError, ValueError) as exc:
            return _error(409, f"{e.name}: particles.csv unreadable: {exc}")
        h, w = e.shape
        return JSONResponse({
            "name": e.name, "width": w, "height": h, "pixel_size_um": e.pixel_size_um, "unit": e.summary.get("unit"),
            "image": str(e.image_path), "image_ok": e.image_ok, "reviewed": e.reviewed,
            "version": version_of(e.folder / "particles.csv"), "circles": circles_payload(table),
            "count": e.summary.get("count"), "count_used": e.summary.get("count_used"),
            "d50": (e.summary.get("statistics") or {}).get("Q0", {}).get("d50"),
            "warnings": e.summary.get("warnings", []),
        })

    async def pixels(request: Request) -> Response:
        e = entry_or_404(request.path_params["name"])
        try:
            max_side = int(request.query_params.get("max", "0"))
        except ValueError:
            return _error(400, "max must be a whole number of pixels (0: full size)")
        if max_side < 0 or max_side > 100_000:
            return _error(400, f"max must be between 0 and 100000, got {max_side}")
        if not e.image_ok:
            return _error(409, f"source image {e.image_path} is missing (moved or deleted since the analysis)")
        try:
            data = await asyncio.to_thread(display_jpeg, e, max_side)
        except SrpsaError as exc:
            return _error(409, str(exc))
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "no-cache"})

    async def save(request: Request) -> Response:
        e = entry_or_404(request.path_params["name"])
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return _error(413, f"request body over {MAX_BODY // (1024 * 1024)} MiB")
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "request body is not valid JSON")
        try:
            result = await asyncio.to_thread(save_image, root, e, body)
        except BadRequest as exc:
            return _error(400, str(exc))
        except Conflict as exc:
            return _error(409, str(exc))
        except SrpsaError as exc:
            return _error(409, f"save failed: {exc}")
        s = result["summary"]
        return JSONResponse({"version": result["version"], "changes": result["changes"], "count": s["count"],
                             "count_used": s["count_used"], "d50": s["statistics"]["Q0"].get("d50")})

    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404 and exc.detail == "Not Found":  # the router's own: name the path
            return _error(404, f"not found: {request.url.path} (images are those listed by /api/images)")
        return _error(exc.status_code, str(exc.detail))

    routes = [
        Route("/", index),
        Route("/api/images", images),
        Route("/api/images/{name}", image),
        Route("/api/images/{name}/pixels", pixels),
        Route("/api/images/{name}/save", save, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})
