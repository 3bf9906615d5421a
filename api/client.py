"""A small typed client for agents: the /v1 API over httpx, answers as the API's Pydantic models.

    from api.client import KgmemClient, KgmemApiError
    from graph.model import EntityIn, ObservationIn, EntityRef

    with KgmemClient("http://127.0.0.1:8000", api_key=token, space="acme") as kg:
        kg.upsert_entities([EntityIn(kind="Project", name="Churn model")], idempotency_key="run-42-1")
        kg.add_observations([ObservationIn(entity=EntityRef(name="Churn model"), text="AUC 0.81 on March data")])
        for item in kg.recall("what do we know about the churn model?").items:
            print(item.score, item.text)

Every error answer raises `KgmemApiError`, which carries the problem details (`status`,
`type`, `title`, `detail`, `errors`, `request_id`) and `retry_after` when the server sent one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter

from agents.briefs import Brief, BriefRequest
from agents.ml import (
    BestModel,
    BestModelQuery,
    DriftIn,
    DriftRecord,
    ExperimentIn,
    ExperimentView,
    FeatureImportanceIn,
    HyperparameterAdvice,
    HyperparameterQuery,
    Lineage,
    LineageQuery,
    ModelIn,
    ModelVersionIn,
    StableFeature,
    StableFeaturesQuery,
    StageChange,
    VersionDiff,
    VersionDiffQuery,
    VersionView,
)
from agents.outcomes import AgentTrackRecord, DelegationState, OutcomeRecord, OutcomeRequest
from api.auth import ApiKey, Scope
from api.jobs import Job
from api.models import (
    CypherRequest,
    EntityBatch,
    EntityList,
    EntityRetraction,
    KeyCreate,
    KeyCreated,
    KeyPage,
    MemoryHistoryItem,
    MemoryItem,
    MemoryMessage,
    MemoryResults,
    ObservationBatch,
    ObservationList,
    ObservationRetraction,
    RelationBatch,
    RelationList,
    RelationRetraction,
    ReindexRequest,
    ReportList,
    ReportRequest,
    Retracted,
    SearchPage,
    Stats,
)
from graph.guard import CypherResult
from graph.model import (
    Entity,
    EntityHistory,
    EntityIn,
    Neighbourhood,
    Observation,
    ObservationIn,
    Page,
    PurgeReport,
    Relation,
    RelationIn,
)
from graph.vocabulary import Kind
from memory.recall import RecallQuery, RecallResult

M = TypeVar("M", bound=BaseModel)


class KgmemApiError(Exception):
    """An error answer of the API, with its RFC 9457 problem details."""

    def __init__(self, status: int, problem: dict[str, Any], retry_after: float | None = None) -> None:
        self.status = status
        self.problem = problem
        self.type: str = problem.get("type", "about:blank")
        self.title: str = problem.get("title", "")
        self.detail: str | None = problem.get("detail")
        self.errors: list[dict[str, str]] = problem.get("errors") or []
        self.request_id: str | None = problem.get("request_id")
        self.retry_after = retry_after
        super().__init__(f"{status} {self.title}: {self.detail or self.type}")


class KgmemClient:
    """One API key and one space; `http` lets a caller bring its own httpx.Client (tests pass a TestClient)."""

    def __init__(self, base_url: str, api_key: str | None, space: str, *, timeout: float = 60.0,
                 http: httpx.Client | None = None) -> None:
        self.space = space
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._own = http is None
        self.http = http or httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self._headers = headers

    def close(self) -> None:
        if self._own:
            self.http.close()

    def __enter__(self) -> KgmemClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------------------------
    def _path(self, path: str) -> str:
        return f"/v1/spaces/{quote(self.space, safe='')}{path}"

    def request(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None,
                idempotency_key: str | None = None) -> httpx.Response:
        """Send one request (`path` below /v1/spaces/{space} unless it starts with /v1/); raise on an error answer."""
        url = path if path.startswith("/v1/") else self._path(path)
        headers = dict(self._headers)
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        query = {k: v for k, v in (params or {}).items() if v is not None}
        response = self.http.request(method, url, json=json, params=query, headers=headers)
        if response.status_code >= 400:
            raise _error(response)
        return response

    def _get(self, path: str, model: type[M], **params: Any) -> M:
        return model.model_validate(self.request("GET", path, params=params).json())

    def _post(self, path: str, model: type[M], body: BaseModel | dict[str, Any] | None = None, *,
              idempotency_key: str | None = None) -> M:
        payload = body.model_dump(mode="json", exclude_unset=True) if isinstance(body, BaseModel) else body
        response = self.request("POST", path, json=payload, idempotency_key=idempotency_key)
        return model.model_validate(response.json())

    # -- entities --------------------------------------------------------------------------------------------
    def upsert_entities(self, entities: Sequence[EntityIn | dict[str, Any]], *,
                        idempotency_key: str | None = None) -> list[Entity]:
        batch = EntityBatch(entities=list(entities))
        return self._post("/entities", EntityList, batch, idempotency_key=idempotency_key).entities

    def get_entity(self, entity_id: str, *, known_at: datetime | None = None) -> Entity:
        return self._get(f"/entities/{quote(entity_id, safe='')}", Entity, known_at=_iso(known_at))

    def list_entities(self, *, kinds: Sequence[Kind | str] | None = None, updated_since: datetime | None = None,
                      cursor: str | None = None, limit: int = 50) -> Page[Entity]:
        return self._get("/entities", Page[Entity], kind=list(kinds) if kinds else None,
                         updated_since=_iso(updated_since), cursor=cursor, limit=limit)

    def iter_entities(self, *, kinds: Sequence[Kind | str] | None = None, limit: int = 100) -> Iterator[Entity]:
        """Every entity, following the cursor page after page."""
        cursor = None
        while True:
            page = self.list_entities(kinds=kinds, cursor=cursor, limit=limit)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def search(self, text: str, *, kinds: Sequence[Kind | str] | None = None, limit: int = 20,
               cursor: str | None = None) -> SearchPage:
        return self._get("/entities/search", SearchPage, q=text, kind=list(kinds) if kinds else None,
                         limit=limit, cursor=cursor)

    def history(self, entity_id: str) -> EntityHistory:
        return self._get(f"/entities/{quote(entity_id, safe='')}/history", EntityHistory)

    def neighbourhood(self, entity_id: str, *, depth: int = 1, limit: int = 50, cursor: str | None = None,
                      kinds: Sequence[Kind | str] | None = None) -> Neighbourhood:
        return self._get(f"/entities/{quote(entity_id, safe='')}/neighbourhood", Neighbourhood, depth=depth,
                         limit=limit, cursor=cursor, kind=list(kinds) if kinds else None)

    def retract_entity(self, entity_id: str) -> EntityRetraction:
        return self._post(f"/entities/{quote(entity_id, safe='')}/retract", EntityRetraction)

    def delete_entity(self, entity_id: str) -> PurgeReport:
        response = self.request("DELETE", f"/entities/{quote(entity_id, safe='')}")
        return PurgeReport.model_validate(response.json())

    def purge_entity(self, entity_id: str) -> PurgeReport:
        return self._post(f"/entities/{quote(entity_id, safe='')}/purge", PurgeReport)

    # -- observations and relations ------------------------------------------------------------------------------
    def add_observations(self, observations: Sequence[ObservationIn | dict[str, Any]], *, create_missing: bool = False,
                         idempotency_key: str | None = None) -> list[Observation]:
        batch = ObservationBatch(observations=list(observations), create_missing=create_missing)
        return self._post("/observations", ObservationList, batch, idempotency_key=idempotency_key).observations

    def retract_observations(self, ids: Sequence[str]) -> int:
        return self._post("/observations/retract", Retracted, ObservationRetraction(ids=list(ids))).retracted

    def upsert_relations(self, relations: Sequence[RelationIn | dict[str, Any]], *, create_missing: bool = False,
                         idempotency_key: str | None = None) -> list[Relation]:
        batch = RelationBatch(relations=list(relations), create_missing=create_missing)
        return self._post("/relations", RelationList, batch, idempotency_key=idempotency_key).relations

    def retract_relations(self, relations: Sequence[RelationIn | dict[str, Any]]) -> int:
        return self._post("/relations/retract", Retracted, RelationRetraction(relations=list(relations))).retracted

    # -- recall ----------------------------------------------------------------------------------------------
    def recall(self, query: RecallQuery | str, **options: Any) -> RecallResult:
        body = query if isinstance(query, RecallQuery) else RecallQuery(text=query, **options)
        return self._post("/recall", RecallResult, body)

    # -- free-text memories (mem0's shapes) -----------------------------------------------------------------------
    def add_memory(self, messages: str | list[dict[str, Any]], *, user_id: str | None = None,
                   agent_id: str | None = None, run_id: str | None = None, metadata: dict[str, Any] | None = None,
                   infer: bool = True, idempotency_key: str | None = None) -> MemoryResults:
        body = _scoped(messages=messages, user_id=user_id, agent_id=agent_id, run_id=run_id, metadata=metadata,
                       infer=infer)
        return self._post("/memories", MemoryResults, body, idempotency_key=idempotency_key)

    def add_memories(self, memories: list[dict[str, Any]], *, idempotency_key: str | None = None) -> MemoryResults:
        """Many verbatim memories in one call: [{"text", "user_id"/"agent_id"/"run_id", "metadata"?}]."""
        return self._post("/memories/batch", MemoryResults, {"memories": memories}, idempotency_key=idempotency_key)

    def search_memories(self, query: str, *, user_id: str | None = None, agent_id: str | None = None,
                        run_id: str | None = None, limit: int = 10,
                        filters: dict[str, Any] | None = None) -> MemoryResults:
        body = _scoped(query=query, user_id=user_id, agent_id=agent_id, run_id=run_id, limit=limit, filters=filters)
        return self._post("/memories/search", MemoryResults, body)

    def get_memories(self, *, user_id: str | None = None, agent_id: str | None = None, run_id: str | None = None,
                     limit: int = 100, cursor: str | None = None) -> MemoryResults:
        return self._get("/memories", MemoryResults, user_id=user_id, agent_id=agent_id, run_id=run_id,
                         limit=limit, cursor=cursor)

    def get_memory(self, memory_id: str) -> MemoryItem:
        return self._get(f"/memories/{quote(memory_id, safe='')}", MemoryItem)

    def update_memory(self, memory_id: str, text: str, *, metadata: dict[str, Any] | None = None) -> MemoryMessage:
        response = self.request("PUT", f"/memories/{quote(memory_id, safe='')}",
                                json=_scoped(text=text, metadata=metadata))
        return MemoryMessage.model_validate(response.json())

    def delete_memory(self, memory_id: str) -> MemoryMessage:
        return MemoryMessage.model_validate(self.request("DELETE", f"/memories/{quote(memory_id, safe='')}").json())

    def memory_history(self, memory_id: str) -> list[MemoryHistoryItem]:
        response = self.request("GET", f"/memories/{quote(memory_id, safe='')}/history")
        return TypeAdapter(list[MemoryHistoryItem]).validate_python(response.json())

    # -- delegations -----------------------------------------------------------------------------------------
    def brief(self, request: BriefRequest | dict[str, Any], *, idempotency_key: str | None = None) -> Brief:
        return self._post("/delegations/brief", Brief, _model(BriefRequest, request), idempotency_key=idempotency_key)

    def record_outcome(self, request: OutcomeRequest | dict[str, Any], *,
                       idempotency_key: str | None = None) -> OutcomeRecord:
        return self._post("/delegations/outcome", OutcomeRecord, _model(OutcomeRequest, request),
                          idempotency_key=idempotency_key)

    def delegation(self, delegation_id: str) -> DelegationState:
        return self._get(f"/delegations/{quote(delegation_id, safe='')}", DelegationState)

    def feedback(self) -> dict[str, int]:
        return self.request("GET", "/delegations/feedback").json()["net"]

    def track_record(self, agent: str) -> AgentTrackRecord:
        return self._get("/delegations/track-record", AgentTrackRecord, agent=agent)

    # -- experiments, models and features ----------------------------------------------------------------------
    def record_experiment(self, experiment: ExperimentIn | dict[str, Any], *,
                          idempotency_key: str | None = None) -> ExperimentView:
        return self._post("/experiments", ExperimentView, _model(ExperimentIn, experiment),
                          idempotency_key=idempotency_key)

    def hyperparameters_for(self, query: HyperparameterQuery | dict[str, Any]) -> HyperparameterAdvice:
        return self._post("/experiments/hyperparameters", HyperparameterAdvice, _model(HyperparameterQuery, query))

    def record_model(self, model: ModelIn | dict[str, Any], *, idempotency_key: str | None = None) -> Lineage:
        return self._post("/models", Lineage, _model(ModelIn, model), idempotency_key=idempotency_key)

    def record_model_version(self, version: ModelVersionIn | dict[str, Any], *,
                             idempotency_key: str | None = None) -> VersionView:
        return self._post("/models/versions", VersionView, _model(ModelVersionIn, version),
                          idempotency_key=idempotency_key)

    def set_stage(self, change: StageChange | dict[str, Any]) -> VersionView:
        return self._post("/models/stage", VersionView, _model(StageChange, change))

    def record_drift(self, drift: DriftIn | dict[str, Any], *, idempotency_key: str | None = None) -> DriftRecord:
        return self._post("/models/drift", DriftRecord, _model(DriftIn, drift), idempotency_key=idempotency_key)

    def best_model(self, query: BestModelQuery | dict[str, Any]) -> BestModel:
        return self._post("/models/best", BestModel, _model(BestModelQuery, query))

    def lineage(self, model: str) -> Lineage:
        return self._post("/models/lineage", Lineage, LineageQuery(model=model))

    def diff_versions(self, model: str, a: str, b: str) -> VersionDiff:
        return self._post("/models/diff", VersionDiff, VersionDiffQuery(model=model, a=a, b=b))

    def record_feature_importance(self, importance: FeatureImportanceIn | dict[str, Any]) -> VersionView:
        return self._post("/features/importance", VersionView, _model(FeatureImportanceIn, importance))

    def stable_features(self, query: StableFeaturesQuery | dict[str, Any]) -> list[StableFeature]:
        response = self.request("POST", "/features/stable", json=_model(StableFeaturesQuery, query).model_dump(mode="json"))
        return TypeAdapter(list[StableFeature]).validate_python(response.json())

    # -- analysts --------------------------------------------------------------------------------------------
    def cypher(self, query: str, params: dict[str, Any] | None = None) -> CypherResult:
        return self._post("/cypher", CypherResult, CypherRequest(query=query, params=params or {}))

    def reports(self) -> ReportList:
        return self._get("/reports", ReportList)

    def run_report(self, name: str, **params: Any) -> CypherResult:
        return self._post(f"/reports/{quote(name, safe='')}", CypherResult, ReportRequest(params=params))

    # -- admin -----------------------------------------------------------------------------------------------
    def stats(self) -> Stats:
        return self._get("/admin/stats", Stats)

    def reindex(self, *, idempotency_key: str | None = None) -> Job:
        return self._post("/admin/reindex", Job, idempotency_key=idempotency_key)

    def job(self, job_id: str) -> Job:
        return self._get(f"/admin/jobs/{quote(job_id, safe='')}", Job)

    def reindex_all(self, *, full: bool = False, idempotency_key: str | None = None) -> Job:
        return self._post("/v1/admin/reindex", Job, ReindexRequest(full=full), idempotency_key=idempotency_key)

    def global_job(self, job_id: str) -> Job:
        return self._get(f"/v1/admin/jobs/{quote(job_id, safe='')}", Job)

    def create_key(self, name: str, scopes: Sequence[Scope | str]) -> KeyCreated:
        return self._post("/admin/keys", KeyCreated, KeyCreate(name=name, scopes=[Scope(s) for s in scopes]))

    def list_keys(self, *, cursor: str | None = None, limit: int = 50) -> KeyPage:
        return self._get("/admin/keys", KeyPage, cursor=cursor, limit=limit)

    def revoke_key(self, key_id: str) -> ApiKey:
        return ApiKey.model_validate(self.request("DELETE", f"/admin/keys/{quote(key_id, safe='')}").json())


def _model(model: type[M], value: M | dict[str, Any]) -> M:
    return value if isinstance(value, model) else model.model_validate(value)


def _scoped(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _error(response: httpx.Response) -> KgmemApiError:
    try:
        problem = response.json()
        if not isinstance(problem, dict):
            problem = {"detail": str(problem)}
    except ValueError:
        problem = {"detail": response.text[:500] or None}
    problem.setdefault("status", response.status_code)
    problem.setdefault("title", response.reason_phrase)
    retry = response.headers.get("Retry-After")
    try:
        retry_after = float(retry) if retry is not None else None
    except ValueError:
        retry_after = None
    return KgmemApiError(response.status_code, problem, retry_after)
