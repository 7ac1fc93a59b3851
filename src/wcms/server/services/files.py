"""Files on the server: documents uploaded to print, screenshots agents took."""

from __future__ import annotations

import hashlib
import mimetypes
import re
import secrets
from dataclasses import replace
from pathlib import PurePath

from wcms.protocol import FileOut, FileRef
from wcms.server.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge
from wcms.server.services.audit import Actor, record
from wcms.server.services.clock import utcnow
from wcms.server.settings import Settings
from wcms.server.store import files as store
from wcms.server.store import progress as run_store
from wcms.server.store.engine import Database
from wcms.server.store.files import FileRecord, NewFile

KINDS = ("upload", "screenshot")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_UNSAFE_NAME = re.compile(r"[\x00-\x1f/\\:*?\"<>|]+")


class Files:
    """Stores files in the database (so every replica sees them and backups hold them)."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    async def upload(
        self, data: bytes, *, name: str, content_type: str | None, actor: Actor
    ) -> FileOut:
        """An administrator's upload (a document to print)."""
        clean = _clean_name(name)
        new = self._new_file(
            data,
            name=clean,
            content_type=content_type,
            kind="upload",
            created_by=actor.name,
        )
        async with self._db.begin() as conn:
            await store.add(conn, new)
            await record(conn, actor, "file.upload", target=new.meta.id, detail={"name": clean})
        return file_out(new.meta)

    async def store_for_run(
        self, machine_id: str, data: bytes, *, name: str, run_id: int, attempt: int
    ) -> FileRef:
        """A file an agent produced for one of its running runs: PNG screenshots only."""
        if not data.startswith(PNG_MAGIC):
            raise BadRequest("agents may store PNG screenshots only", code="not_png")
        new = self._new_file(
            data,
            name=_clean_name(name),
            content_type="image/png",
            kind="screenshot",
            created_by=machine_id,
        )
        meta = replace(new.meta, machine_id=machine_id, run_id=run_id)
        new = replace(new, meta=meta)
        async with self._db.begin() as conn:
            run = await run_store.live_run(conn, run_id, attempt)
            if run is None or machine_id not in (run.machine_id, run.relay_id):
                raise Forbidden(
                    f"run {run_id} attempt {attempt} is not a running run of this machine",
                    code="not_your_run",
                )
            await store.add(conn, new)
        return FileRef.model_validate(new.meta, from_attributes=True)

    async def meta(self, file_id: str) -> FileOut:
        async with self._db.connect() as conn:
            found = await store.get(conn, file_id)
        if found is None:
            raise NotFound(f"no file {file_id}")
        return file_out(found)

    async def content(
        self, file_id: str, *, kinds: tuple[str, ...] = KINDS
    ) -> tuple[FileOut, bytes]:
        """A file and its bytes; NotFound unless it is of one of ``kinds``."""
        async with self._db.connect() as conn:
            found = await store.get(conn, file_id)
            data = await store.content(conn, file_id) if found is not None else None
        if found is None or data is None or found.kind not in kinds:
            raise NotFound(f"no file {file_id}")
        return file_out(found), data

    async def list(self, *, kind: str | None, machine_id: str | None, limit: int) -> list[FileOut]:
        if kind is not None and kind not in KINDS:
            raise BadRequest(f"kind must be one of {', '.join(KINDS)}", field="kind")
        async with self._db.connect() as conn:
            found = await store.list_files(conn, kind=kind, machine_id=machine_id, limit=limit)
        return [file_out(meta) for meta in found]

    async def delete(self, file_id: str, *, actor: Actor) -> None:
        async with self._db.begin() as conn:
            if not await store.remove(conn, file_id):
                raise NotFound(f"no file {file_id}")
            await record(conn, actor, "file.delete", target=file_id)

    def _new_file(
        self,
        data: bytes,
        *,
        name: str,
        content_type: str | None,
        kind: str,
        created_by: str,
    ) -> NewFile:
        limit = self._settings.max_upload_bytes
        if len(data) > limit:
            raise PayloadTooLarge(f"the file is larger than {limit} bytes")
        if not data:
            raise BadRequest("the file is empty", code="empty_file")
        guessed = mimetypes.guess_type(name)[0]
        meta = FileRecord(
            id="f" + secrets.token_hex(12),
            kind=kind,
            name=name,
            content_type=(content_type or guessed or "application/octet-stream")[:127],
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            machine_id=None,
            run_id=None,
            created_at=utcnow(),
            created_by=created_by,
        )
        return NewFile(meta=meta, content=data)


def file_out(meta: FileRecord) -> FileOut:
    return FileOut.model_validate(meta, from_attributes=True)


def _clean_name(name: str) -> str:
    """A plain file name: no directories, no control or reserved characters."""
    base = PurePath(name.replace("\\", "/")).name
    clean = _UNSAFE_NAME.sub("_", base).strip(" .")[:200]
    return clean or "file"
