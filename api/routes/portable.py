"""Admin: export a space to a portable archive and import one, each as a background job with progress.

    POST /v1/spaces/{space}/admin/export              -> 202 Job (kind "export"); GET …/admin/jobs/{id} shows progress
    GET  /v1/spaces/{space}/admin/exports/{job_id}    -> the finished archive (.tar.gz)
    POST /v1/spaces/{space}/admin/import?merge=false  -> 202 Job (kind "import"); the body is the .tar.gz

The archive is memory/portable.py's format. An upload is limited by the API's body limit
(`KGMEM_API_MAX_BODY_BYTES`, 413 beyond it); a bigger archive is imported with `kgmem import PATH`.
An upload that is not a kgmem export (format, version, checksums) is refused with 422 before any
job starts, and an import into a space that holds data without `merge=true` with 409. Archives an
export job wrote stay under `<home>/exports/` until the operator removes them.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import (
    Admin,
    Config,
    Idempotency,
    IdempotencyKey,
    IdPath,
    Jobs,
    SpacePath,
    services,
)
from api.jobs import Job, JobProgress
from api.routes import PROBLEMS, responses
from graph.errors import Conflict, NotFound
from graph.settings import Settings
from memory.portable import (
    export_space,
    import_archive,
    not_empty,
    opened_archive,
    space_has_data,
)

router = APIRouter(prefix="/v1/spaces/{space}/admin", tags=["admin"], responses=PROBLEMS)

ARCHIVE_MEDIA_TYPE = "application/gzip"


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vectors: bool = Field(False, description="Include the Chroma vectors, so an import with the same embedding "
                                             "model need not embed again")


def exports_dir(settings: Settings) -> Path:
    return Path(settings.home) / "exports"


def archive_path(settings: Settings, job_id: str) -> Path:
    return exports_dir(settings) / f"{job_id}.tar.gz"


@router.post("/export", response_model=Job, status_code=202, responses=responses(409),
             summary="Export the space to a portable archive, in the background; download it when the job is done")
def export(space: SpacePath, request: Request, caller: Admin, jobs: Jobs, store: Idempotency, config: Config,
           body: ExportRequest | None = None, idempotency_key: IdempotencyKey = None) -> JSONResponse:
    body = body or ExportRequest()
    memory = services(request).memory()

    def work(job: JobProgress) -> dict:
        target = archive_path(config, job.id)
        report = export_space(memory, space, target, vectors=body.vectors, gzip=True, progress=job)
        return {"counts": report.counts, "vectors": report.vectors, "seconds": report.seconds,
                "download": f"/v1/spaces/{space}/admin/exports/{job.id}"}

    return store.run(request, caller.key.key_id, idempotency_key, {"space": space, **body.model_dump()},
                     lambda: jobs.start_reporting("export", space, work), status_code=202)


@router.get("/exports/{job_id}", response_class=FileResponse, summary="The archive a finished export job wrote",
            responses={200: {"content": {ARCHIVE_MEDIA_TYPE: {}}, "description": "The .tar.gz archive"}, **responses(409)})
def download(space: SpacePath, job_id: IdPath, caller: Admin, jobs: Jobs, config: Config) -> FileResponse:
    job = jobs.get(job_id, space)
    if job.kind != "export":
        raise NotFound(f"job {job_id!r} is not an export")
    if job.state != "succeeded":
        raise Conflict(f"export job {job_id!r} is {job.state}: download it once its state is succeeded")
    path = archive_path(config, job_id)
    if not path.is_file():
        raise NotFound(f"the archive of export job {job_id!r} is no longer on this server")
    return FileResponse(path, media_type=ARCHIVE_MEDIA_TYPE, filename=f"kgmem-{space}-{job_id}.tar.gz")


@router.post("/import", response_model=Job, status_code=202, responses=responses(409),
             summary="Import a portable archive (the request body, application/gzip) into the space, in the background",
             openapi_extra={"requestBody": {"required": True, "content": {ARCHIVE_MEDIA_TYPE: {
                 "schema": {"type": "string", "format": "binary"}}}}})
async def import_(space: SpacePath, request: Request, caller: Admin, jobs: Jobs, store: Idempotency, config: Config,
                  merge: Annotated[bool, Query(description="Add what the space lacks instead of refusing a space "
                                                           "that holds data")] = False,
                  idempotency_key: IdempotencyKey = None) -> JSONResponse:
    content = await request.body()  # the body limit applies here: 413 beyond it
    return await run_in_threadpool(_start_import, space, request, caller, jobs, store, config, content, merge,
                                   idempotency_key)


def _start_import(space: str, request: Request, caller, jobs, store, config: Settings, content: bytes, merge: bool,
                  idempotency_key: str | None) -> JSONResponse:
    memory = services(request).memory()
    uploads = Path(config.home) / "imports"
    uploads.mkdir(parents=True, exist_ok=True)
    upload = uploads / f"{uuid.uuid4()}.tar.gz"
    upload.write_bytes(content)
    try:
        with opened_archive(upload):  # a malformed archive is refused now (422), not in the job
            pass
        if not merge and space_has_data(memory, space):
            raise not_empty(space)
    except Exception:
        upload.unlink(missing_ok=True)
        raise

    started = False

    def work(job: JobProgress) -> dict:
        try:
            report = import_archive(memory, upload, space, merge=merge, progress=job)
        finally:
            upload.unlink(missing_ok=True)
        return {"source_space": report.source_space, "merge": report.merge, "vectors": report.vectors,
                "created": report.created, "skipped": report.skipped, "embedded": report.embedded,
                "seconds": report.seconds}

    def start() -> Job:
        nonlocal started
        started = True
        return jobs.start_reporting("import", space, work)

    body = {"space": space, "merge": merge, "sha256": hashlib.sha256(content).hexdigest()}
    try:
        return store.run(request, caller.key.key_id, idempotency_key, body, start, status_code=202)
    finally:
        if not started:  # a replayed Idempotency-Key: the first request's job has the archive
            upload.unlink(missing_ok=True)
