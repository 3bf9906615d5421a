"""Background jobs (api/jobs.py) on the real Neo4j: a job's writes are its caller's in the audit trail, and
a request's Neo4j time limit does not follow the job into its thread."""

from __future__ import annotations

import time
import uuid

from api.jobs import JobStore
from graph import audit
from graph.gateway import current_time_limit, time_limit


def finished(jobs: JobStore, job_id: str, space: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while (job := jobs.get(job_id, space)).state not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, f"job {job_id} still {job.state}"
        time.sleep(0.1)
    return job.model_dump()


def test_a_job_works_as_its_caller_without_the_callers_time_limit(gateway):
    jobs, space = JobStore(gateway), f"test-{uuid.uuid4().hex[:12]}"

    def work() -> dict:
        who = audit.current_actor()
        return {"key_id": who.key_id, "operation": who.operation, "time_limit": current_time_limit()}

    try:
        with time_limit(0.5), audit.actor(key_id="k-123", operation="import_"):  # as inside an API request
            job = jobs.start("import", space, work)
        report = finished(jobs, job.id, space)["report"]
        assert report == {"key_id": "k-123", "operation": "import_", "time_limit": None}
    finally:
        gateway.write("MATCH (j:ApiJob {job_space: $space}) DETACH DELETE j", space=space)
