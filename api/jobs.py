"""Background jobs (reindex, export, import) whose state lives in Neo4j, so any replica can report on them.

    (:ApiJob {id, kind, job_space, full, state, created_at, started_at, finished_at, report, error, progress})

`progress` (JSON) is, for jobs that report it, done/total per phase: {"entities": {"done": 500, "total": 1200}};
the job writes it at most every `PROGRESS_EVERY_S` seconds, and at each phase's end.

`job_space` is the space a space-scoped job works on, null for a global one. The replica that
accepted the job runs it in a thread; a replica that dies mid-job leaves it `running` (its
start-up reconcile finishes the work anyway).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from graph import audit
from graph.errors import NotFound
from graph.gateway import Gateway

log = logging.getLogger(__name__)

JobState = Literal["queued", "running", "succeeded", "failed"]
PROGRESS_EVERY_S = 1.0

SCHEMA = ["CREATE CONSTRAINT api_job_id IF NOT EXISTS FOR (j:ApiJob) REQUIRE j.id IS UNIQUE"]

CREATE_JOB = """
CREATE (j:ApiJob {id: $id, kind: $kind, job_space: $space, full: $full, state: 'queued', created_at: $now})
RETURN j {.*} AS job
"""
START_JOB = "MATCH (j:ApiJob {id: $id}) SET j.state = 'running', j.started_at = $now"
FINISH_JOB = """
MATCH (j:ApiJob {id: $id})
SET j.state = $state, j.finished_at = $now, j.report = $report, j.error = $error
"""
# Job results that may hold forgotten data; a forgotten space's jobs go whole.
JOBS_CONTAINING = """
MATCH (j:ApiJob)
WHERE ($space IS NOT NULL AND j.job_space = $space)
   OR any(s IN $needles WHERE toLower(coalesce(j.report, '') + ' ' + coalesce(j.error, '')) CONTAINS s)
RETURN j.id AS id, j.job_space = $space AS of_space, coalesce(j.report, '') + ' ' + coalesce(j.error, '') AS text
"""
DELETE_JOBS = "UNWIND $ids AS id MATCH (j:ApiJob {id: id}) DELETE j"
NEEDLES_PER_QUERY = 1000
JOBS_OF_KIND = "MATCH (j:ApiJob {kind: $kind}) WHERE j.job_space = $space RETURN j.id AS id"
SET_PROGRESS = "MATCH (j:ApiJob {id: $id}) SET j.progress = $progress"
GET_JOB = "MATCH (j:ApiJob {id: $id}) WHERE j.job_space = $space OR ($space IS NULL AND j.job_space IS NULL) RETURN j {.*} AS job"


class PhaseProgress(BaseModel):
    done: int
    total: int | None = None


class Job(BaseModel):
    id: str
    kind: str = Field(examples=["reindex"])
    space: str | None = Field(None, description="The space the job works on; null for every space")
    full: bool = False
    state: JobState
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    report: dict[str, Any] | None = None
    error: str | None = None
    progress: dict[str, PhaseProgress] | None = Field(
        None, description="Done and total (null while unknown) per phase, for jobs that report it")


def _job(row: dict[str, Any]) -> Job:
    data = row
    return Job(id=data["id"], kind=data["kind"], space=data.get("job_space"), full=bool(data.get("full")),
               state=data["state"], created_at=data["created_at"], started_at=data.get("started_at"),
               finished_at=data.get("finished_at"), error=data.get("error"),
               report=json.loads(data["report"]) if data.get("report") else None,
               progress=json.loads(data["progress"]) if data.get("progress") else None)


class JobProgress:
    """What a job's work gets to report its progress with: `job.id`, and `job(phase, done, total)`."""

    def __init__(self, store: JobStore, job_id: str) -> None:
        self.id = job_id
        self._store = store
        self._phases: dict[str, dict[str, int | None]] = {}
        self._written_at = 0.0

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        self._phases[phase] = {"done": done, "total": total}
        now = time.monotonic()
        if now - self._written_at >= PROGRESS_EVERY_S or (total is not None and done >= total):
            self._written_at = now
            self.flush()

    def flush(self) -> None:
        if self._phases:
            self._store._run(SET_PROGRESS, id=self.id, progress=json.dumps(self._phases))


class JobStore:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._schema_ready = False

    def _run(self, cypher: str, **params: Any) -> list[dict[str, Any]]:
        return self.gateway.write(cypher, **params)

    def start(self, kind: str, space: str | None, work: Callable[[], Any], *, full: bool = False) -> Job:
        """Record a job and run `work` in a thread; the job's report is what `work` returns."""
        return self.start_reporting(kind, space, lambda _job: work(), full=full)

    def start_reporting(self, kind: str, space: str | None, work: Callable[[JobProgress], Any], *,
                        full: bool = False) -> Job:
        """`start`, with `work` given the job's `JobProgress` to report done/total per phase."""
        if not self._schema_ready:
            for statement in SCHEMA:
                self._run(statement)
            self._schema_ready = True
        job_id = str(uuid.uuid4())
        job = _job(self._run(CREATE_JOB, id=job_id, kind=kind, space=space, full=full, now=_now())[0]["job"])
        # The job's writes are the caller's in the audit trail; the request's Neo4j time limit stays behind.
        caller = audit.current_actor()
        threading.Thread(target=self._execute, args=(job_id, work, caller), name=f"job-{job_id}",
                         daemon=True).start()
        return job

    def _execute(self, job_id: str, work: Callable[[JobProgress], Any], caller: audit.Actor) -> None:
        try:
            self._run(START_JOB, id=job_id, now=_now())
            progress = JobProgress(self, job_id)
            with audit.actor(key_id=caller.key_id, operation=caller.operation, agent=caller.agent,
                             delegation_id=caller.delegation_id):
                result = work(progress)
            progress.flush()
            report = asdict(result) if is_dataclass(result) else result
            self._run(FINISH_JOB, id=job_id, now=_now(), state="succeeded", report=json.dumps(report), error=None)
        except Exception as exc:  # noqa: BLE001 - the job's record says what went wrong
            log.exception("job %s failed", job_id)
            try:
                self._run(FINISH_JOB, id=job_id, now=_now(), state="failed", report=None,
                          error=f"{type(exc).__name__}: {exc}"[:500])
            except Exception:  # noqa: BLE001 - Neo4j itself is gone; the job stays `running`
                log.exception("could not record the failure of job %s", job_id)

    def ids_of(self, kind: str, space: str) -> list[str]:
        """The ids of a space's jobs of one kind (a forget finds the space's export archives by them)."""
        return [row["id"] for row in self._run(JOBS_OF_KIND, kind=kind, space=space)]

    def forget(self, needles: list[str], mentions: Callable[[str], bool], *, space: str | None = None) -> int:
        """Delete the jobs whose report or error holds a needle (lower case) that `mentions` confirms, and
        with `space` every job of that space."""
        doomed: set[str] = set()
        for start in range(0, max(len(needles), 1), NEEDLES_PER_QUERY):
            rows = self._run(JOBS_CONTAINING, space=space, needles=needles[start:start + NEEDLES_PER_QUERY])
            doomed |= {row["id"] for row in rows if row["of_space"] or mentions(row["text"])}
        if doomed:
            self._run(DELETE_JOBS, ids=sorted(doomed))
        return len(doomed)

    def get(self, job_id: str, space: str | None) -> Job:
        """The job, if it belongs to `space` (None: a global job); NotFound otherwise."""
        rows = self._run(GET_JOB, id=job_id, space=space)
        if not rows:
            raise NotFound(f"no job {job_id!r}")
        return _job(rows[0]["job"])


def _now() -> datetime:
    return datetime.now(UTC)
