"""Admin API: what alerting is told to do: channels, rules, silences and maintenance
windows."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from wcms.protocol.alerts import (
    ChannelCreate,
    ChannelOut,
    ChannelPatch,
    ChannelTestOut,
    RuleCreate,
    RuleOut,
    RulePatch,
    SilenceCreate,
    SilenceOut,
    WindowCreate,
    WindowOut,
)
from wcms.server.api.deps import AdminActor, AlertConfigDep

router = APIRouter(prefix="/api", tags=["alerts"])

NamePath = Annotated[str, Path(min_length=1, max_length=64, description="Its name")]
IdPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="Its id")]


# --- channels ----------------------------------------------------------------------


@router.get("/alert-channels", response_model=list[ChannelOut])
async def list_channels(config: AlertConfigDep, _: AdminActor) -> list[ChannelOut]:
    return await config.list_channels()


@router.post("/alert-channels", response_model=ChannelOut, status_code=201)
async def create_channel(
    body: ChannelCreate, config: AlertConfigDep, actor: AdminActor
) -> ChannelOut:
    """Add a channel; its URL and secret are sealed and never shown whole again."""
    return await config.create_channel(body, actor=actor)


@router.get("/alert-channels/{name}", response_model=ChannelOut)
async def get_channel(name: NamePath, config: AlertConfigDep, _: AdminActor) -> ChannelOut:
    return await config.get_channel(name)


@router.patch("/alert-channels/{name}", response_model=ChannelOut)
async def update_channel(
    name: NamePath, patch: ChannelPatch, config: AlertConfigDep, actor: AdminActor
) -> ChannelOut:
    return await config.update_channel(name, patch, actor=actor)


@router.delete("/alert-channels/{name}", status_code=204)
async def delete_channel(name: NamePath, config: AlertConfigDep, actor: AdminActor) -> Response:
    """Remove a channel that no rule or window tells."""
    await config.delete_channel(name, actor=actor)
    return Response(status_code=204)


@router.post("/alert-channels/{name}/test", response_model=ChannelTestOut, status_code=202)
async def test_channel(name: NamePath, config: AlertConfigDep, actor: AdminActor) -> ChannelTestOut:
    """Queue a test message to the channel; its delivery tells how it went."""
    return await config.test_channel(name, actor=actor)


# --- rules -------------------------------------------------------------------------


@router.get("/alert-rules", response_model=list[RuleOut])
async def list_rules(config: AlertConfigDep, _: AdminActor) -> list[RuleOut]:
    return await config.list_rules()


@router.post("/alert-rules", response_model=RuleOut, status_code=201)
async def create_rule(body: RuleCreate, config: AlertConfigDep, actor: AdminActor) -> RuleOut:
    return await config.create_rule(body, actor=actor)


@router.get("/alert-rules/{name}", response_model=RuleOut)
async def get_rule(name: NamePath, config: AlertConfigDep, _: AdminActor) -> RuleOut:
    return await config.get_rule(name)


@router.patch("/alert-rules/{name}", response_model=RuleOut)
async def update_rule(
    name: NamePath, patch: RulePatch, config: AlertConfigDep, actor: AdminActor
) -> RuleOut:
    return await config.update_rule(name, patch, actor=actor)


@router.delete("/alert-rules/{name}", status_code=204)
async def delete_rule(name: NamePath, config: AlertConfigDep, actor: AdminActor) -> Response:
    """Remove a rule with its alerts and silences."""
    await config.delete_rule(name, actor=actor)
    return Response(status_code=204)


# --- silences ----------------------------------------------------------------------


@router.get("/alert-silences", response_model=list[SilenceOut])
async def list_silences(
    config: AlertConfigDep,
    _: AdminActor,
    active: Annotated[
        bool,
        Query(description="Only those in force now; false: ended ones too, newest first"),
    ] = True,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many, ended")] = 200,
) -> list[SilenceOut]:
    return await config.list_silences(active=active, limit=limit)


@router.post("/alert-silences", response_model=SilenceOut, status_code=201)
async def create_silence(
    body: SilenceCreate, config: AlertConfigDep, actor: AdminActor
) -> SilenceOut:
    """Silence matching subjects from now for ``duration_s``."""
    return await config.create_silence(body, actor=actor)


@router.delete("/alert-silences/{silence_id}", status_code=204)
async def end_silence(silence_id: IdPath, config: AlertConfigDep, actor: AdminActor) -> Response:
    """End a silence now; it stays in the list of ended ones."""
    await config.end_silence(silence_id, actor=actor)
    return Response(status_code=204)


# --- maintenance windows -----------------------------------------------------------


@router.get("/maintenance-windows", response_model=list[WindowOut])
async def list_windows(config: AlertConfigDep, _: AdminActor) -> list[WindowOut]:
    return await config.list_windows()


@router.post("/maintenance-windows", response_model=WindowOut, status_code=201)
async def create_window(body: WindowCreate, config: AlertConfigDep, actor: AdminActor) -> WindowOut:
    """Add a window; without a time zone it takes the server's."""
    return await config.create_window(body, actor=actor)


@router.get("/maintenance-windows/{name}", response_model=WindowOut)
async def get_window(name: NamePath, config: AlertConfigDep, _: AdminActor) -> WindowOut:
    return await config.get_window(name)


@router.delete("/maintenance-windows/{name}", status_code=204)
async def delete_window(name: NamePath, config: AlertConfigDep, actor: AdminActor) -> Response:
    await config.delete_window(name, actor=actor)
    return Response(status_code=204)
