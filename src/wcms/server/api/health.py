"""Health probes and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from wcms import __version__
from wcms.server.api.deps import CoreDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """200 while the process serves requests."""
    return {"status": "ok", "version": __version__}


@router.get("/readyz")
async def readyz(core: CoreDep) -> Response:
    """200 when the database answers, takes writes and every background worker runs;
    503 naming what fails otherwise."""
    workers = core.workers()
    failing = await core.readiness()
    if failing is None:
        return JSONResponse({"status": "ready", "workers": workers})
    code, message = failing
    return JSONResponse(
        {"error": {"code": code, "message": message}, "workers": workers}, status_code=503
    )


@router.get("/metrics")
async def metrics(core: CoreDep) -> Response:
    """Prometheus text format."""
    return Response(generate_latest(core.telemetry.registry), media_type=CONTENT_TYPE_LATEST)
