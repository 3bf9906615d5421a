"""Claude extraction, run through the real SDK against a scripted Messages API (tests/fakes.py)."""

from __future__ import annotations

import json
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import jsonschema
import pytest

from fakes import FakeAnthropicTransport
from graph.errors import ConfigurationError, ExtractionFailed, KgmemError, LLMUnavailable, TextTooLong
from graph.model import Provenance
from graph.vocabulary import Kind
from memory.extraction import (
    SYSTEM_PROMPT,
    TOOL_NAME,
    ClaudeExtractor,
    Extraction,
    TokenUsage,
    UsageCounter,
    UsageTotals,
    to_graph_writes,
    tool_input_schema,
)

TEXT = (
    "Delegation d-42 to ml-engineer finished: the churn model v3 reached AUC 0.91 on the March snapshot "
    "of customer_events. Training on the raw table leaked the cancellation date; we rebuilt the features "
    "from the as-of view. Earlier notes said v2 was in production, but v2 was never deployed."
)

LESSON = "Build training features from the as-of view so no column is computed after the prediction date."

VALID = {
    "entities": [
        {"name": "churn model", "type": "Model", "summary": "Predicts customer churn.", "aliases": ["churn predictor"]},
        {"name": "churn model v3", "type": "model version", "attributes": {"version": "3", "metric_auc": 0.91}},
        {"name": "customer_events", "type": "Dataset", "attributes": {"rows": 120000}},
        {"name": "ml-engineer", "type": "Agent", "attributes": {"role": "ml engineering"}},
        {"name": "d-42", "type": "Delegation", "attributes": {"status": "succeeded", "cost_usd": 1.5}},
        {"name": "retention squad", "type": "team"},
    ],
    "relations": [
        {"source": "churn model v3", "type": "VERSION_OF", "target": "churn model"},
        {"source": "churn model v3", "type": "trained on", "target": "customer_events",
         "valid_from": "2025-03-31T00:00:00Z"},
        {"source": "d-42", "type": "DELEGATED_TO", "target": "ml-engineer"},
        {"source": "churn model", "type": "???", "target": "retention squad"},
    ],
    "observations": [{"entity": "churn model v3", "text": "Reached AUC 0.91 on the March snapshot."}],
    "lessons": [{"text": LESSON, "applies_to": ["churn model", "feature store"], "severity": "high",
                 "category": "data-quality"}],
    "contradictions": [{"existing": "v2 is in production", "new": "v2 was never deployed",
                        "explanation": "A version cannot be both in production and never deployed."}],
}

INVALID = {
    "entities": [{"name": "", "type": "Model"}],
    "lessons": [{"text": LESSON, "severity": "critical"}],
}


def extractor(fake: FakeAnthropicTransport, **options) -> ClaudeExtractor:
    return ClaudeExtractor(fake.client(), **options)


# -- the request and the mapping ----------------------------------------------------------------
def test_one_forced_tool_call_is_sent_and_mapped_to_graph_writes():
    fake = FakeAnthropicTransport().tool_use(VALID, input_tokens=1800, output_tokens=420)
    result = extractor(fake, model="claude-sonnet-4-5", max_tokens=1024).extract(
        TEXT, context="Known fact: v2 is in production.", known_entities=["churn model", "Churn Model", "feature store"]
    )

    assert len(fake.requests) == 1
    request = fake.requests[0]
    assert (request.method, request.path) == ("POST", "/v1/messages")
    assert "test-key" in (request.headers.get("x-api-key") or request.headers.get("authorization", ""))
    body = request.body
    assert body["model"] == "claude-sonnet-4-5"
    assert body["max_tokens"] == 1024
    assert body["tool_choice"] == {"type": "tool", "name": TOOL_NAME, "disable_parallel_tool_use": True}
    assert [tool["name"] for tool in body["tools"]] == [TOOL_NAME]
    assert body["tools"][0]["input_schema"] == tool_input_schema(Extraction)
    assert body["system"] == SYSTEM_PROMPT and "Lesson" in body["system"] and "Delegation" in body["system"]
    [user] = body["messages"]
    assert user["role"] == "user"
    assert TEXT in user["content"] and "v2 is in production" in user["content"]
    known = user["content"].split("<known_entities>\n")[1].split("\n</known_entities>")[0]
    assert known.splitlines() == ["- churn model", "- feature store"]  # de-duplicated by normalised name

    assert result.attempts == 1
    assert result.usage == TokenUsage(1800, 420)
    assert result.model == "claude-sonnet-4-5"
    assert [e.name for e in result.extraction.entities][:2] == ["churn model", "churn model v3"]

    writes = to_graph_writes(result.extraction, Provenance(agent="ml-engineer", delegation_id="d-42"))
    kinds = {e.name: (e.kind, e.entity_type) for e in writes.entities}
    assert kinds == {
        "churn model": (Kind.MODEL, "Model"),
        "churn model v3": (Kind.MODEL_VERSION, "ModelVersion"),
        "customer_events": (Kind.DATASET, "Dataset"),
        "ml-engineer": (Kind.AGENT, "Agent"),
        "d-42": (Kind.DELEGATION, "Delegation"),
        "retention squad": (Kind.THING, "team"),
        LESSON: (Kind.LESSON, "Lesson"),
    }
    lesson = next(e for e in writes.entities if e.kind is Kind.LESSON)
    assert lesson.summary == LESSON
    assert lesson.attributes == {"severity": "high", "category": "data-quality"}
    assert next(e for e in writes.entities if e.name == "churn model v3").attributes == {"version": "3", "metric_auc": 0.91}
    assert all(e.provenance == Provenance(source="extraction", agent="ml-engineer", delegation_id="d-42")
               for e in writes.entities)

    relations = {(r.source.name, r.canonical_type, r.target.name): r for r in writes.relations}
    assert set(relations) == {
        ("churn model v3", "VERSION_OF", "churn model"),
        ("churn model v3", "TRAINED_ON", "customer_events"),
        ("d-42", "DELEGATED_TO", "ml-engineer"),
        (LESSON, "APPLIES_TO", "churn model"),
        (LESSON, "APPLIES_TO", "feature store"),
    }
    # Known names carry their kind; names the extraction did not define resolve by name (create_missing).
    assert relations[(LESSON, "APPLIES_TO", "churn model")].target.kind is Kind.MODEL
    assert relations[(LESSON, "APPLIES_TO", "churn model")].source.kind is Kind.LESSON
    assert relations[(LESSON, "APPLIES_TO", "feature store")].target.kind is None
    assert relations[("churn model v3", "TRAINED_ON", "customer_events")].valid_from.isoformat() == "2025-03-31T00:00:00+00:00"
    assert [(s.item, "???" in s.reason) for s in writes.skipped] == [("relation churn model -[???]-> retention squad", True)]

    [observation] = writes.observations
    assert (observation.entity.name, observation.entity.kind) == ("churn model v3", Kind.MODEL_VERSION)
    assert [c.new for c in writes.contradictions] == ["v2 was never deployed"]


def test_the_tool_schema_is_self_contained_and_matches_the_pydantic_model():
    schema = tool_input_schema(Extraction)
    text = json.dumps(schema)
    assert "$ref" not in text and "$defs" not in text
    assert '"title"' not in text
    assert schema["type"] == "object"
    assert set(schema["properties"]) == {"entities", "relations", "observations", "lessons", "contradictions"}
    assert schema["properties"]["lessons"]["items"]["properties"]["severity"]["enum"] == ["low", "medium", "high"]
    validator = jsonschema.Draft202012Validator(schema)
    validator.check_schema(schema)
    assert list(validator.iter_errors(VALID)) == []
    assert {tuple(e.absolute_path) for e in validator.iter_errors(INVALID)} == {
        ("entities", 0, "name"), ("lessons", 0, "severity"),
    }


def test_mem0_and_unknown_types_become_things_and_bad_attributes_are_refused():
    extraction = Extraction.model_validate({"entities": [{"name": "m-1", "type": "Memory"}, {"name": "Paris", "type": "city"}]})
    writes = to_graph_writes(extraction)
    assert [(e.kind, e.entity_type) for e in writes.entities] == [(Kind.THING, "Memory"), (Kind.THING, "city")]

    for attributes, fragment in [({"Bad Key": 1}, "Bad Key"), ({"name": "x"}, "reserved"), ({"status": "done"}, "status"),
                                 ({"nested": {"a": 1}}, "nested")]:
        with pytest.raises(ValueError) as caught:
            Extraction.model_validate({"entities": [{"name": "d-1", "type": "Delegation", "attributes": attributes}]})
        assert fragment in str(caught.value)


def test_duplicate_entities_and_lessons_are_reported_not_written_twice():
    extraction = Extraction.model_validate({
        "entities": [{"name": "Churn Model", "type": "Model"}, {"name": "churn  model", "type": "model"}],
        "lessons": [{"text": LESSON}, {"text": "  " + LESSON.replace(" ", "  ")}],
    })
    writes = to_graph_writes(extraction)
    assert [e.name for e in writes.entities] == ["Churn Model", LESSON]
    assert [s.reason for s in writes.skipped] == ["duplicate of an earlier entity", "duplicate of an earlier lesson"]


# -- invalid answers ---------------------------------------------------------------------------
def test_an_invalid_answer_is_sent_back_once_and_the_corrected_one_is_used():
    fake = FakeAnthropicTransport().tool_use(INVALID, input_tokens=1000, output_tokens=100)
    fake.tool_use(VALID, input_tokens=1300, output_tokens=400)
    result = extractor(fake).extract(TEXT)

    assert result.attempts == 2
    assert result.usage == TokenUsage(2300, 500)
    assert result.extraction.lessons[0].severity == "high"
    assert len(fake.requests) == 2

    first, second = fake.requests
    assert second.body["tool_choice"]["name"] == TOOL_NAME
    assert second.messages[0] == first.messages[0]
    assistant, feedback = second.messages[1:]
    assert assistant["role"] == "assistant"
    [call] = assistant["content"]
    assert (call["type"], call["name"], call["input"]) == ("tool_use", TOOL_NAME, INVALID)
    assert feedback["role"] == "user"
    [tool_result] = feedback["content"]
    assert tool_result["type"] == "tool_result"
    assert tool_result["tool_use_id"] == call["id"]
    assert tool_result["is_error"] is True
    assert "entities.0.name" in tool_result["content"] and "lessons.0.severity" in tool_result["content"]
    assert "'critical'" in tool_result["content"] or '"critical"' in tool_result["content"]


def test_two_invalid_answers_raise_extraction_failed_with_the_validation_errors():
    fake = FakeAnthropicTransport().tool_use(INVALID, input_tokens=1000, output_tokens=100, times=2)
    with pytest.raises(ExtractionFailed) as caught:
        extractor(fake).extract(TEXT)

    message = str(caught.value)
    assert isinstance(caught.value, KgmemError)
    assert "invalid after 2 attempts" in message
    assert "lessons.0.severity" in message and "entities.0.name" in message
    assert "\n" not in message
    assert caught.value.attempts == 2
    assert caught.value.usage == TokenUsage(2000, 200)
    assert len(fake.requests) == 2


def test_a_prose_answer_without_the_tool_call_is_corrected():
    fake = FakeAnthropicTransport().text("Here is what I found: a churn model.")
    fake.tool_use(VALID)
    result = extractor(fake).extract(TEXT)

    assert result.attempts == 2
    assistant, feedback = fake.requests[1].messages[1:]
    assert assistant["content"] == [{"type": "text", "text": "Here is what I found: a churn model."}]
    assert feedback["role"] == "user" and f"You did not call {TOOL_NAME}" in feedback["content"]


def test_a_refusal_is_not_retried():
    fake = FakeAnthropicTransport().text("I can't help with that.", stop_reason="refusal").tool_use(VALID)
    with pytest.raises(ExtractionFailed, match="refusal"):
        extractor(fake).extract(TEXT)
    assert len(fake.requests) == 1


# -- the token budget ---------------------------------------------------------------------------
def test_text_over_the_budget_is_refused_before_any_request():
    fake = FakeAnthropicTransport().tool_use(VALID)
    claude = extractor(fake, max_tokens=1024, token_budget=5000)
    with pytest.raises(TextTooLong) as caught:
        claude.extract("word " * 4000)
    assert "token_budget 5000" in str(caught.value) and "split it" in str(caught.value)
    assert fake.requests == []

    # The same extractor sends a text that fits, so the refusal above was about size.
    fitting = "word " * 200
    assert claude.estimate_input_tokens(fitting) + 1024 <= 5000
    assert claude.extract(fitting).attempts == 1
    assert len(fake.requests) == 1


def test_a_budget_that_cannot_hold_the_prompt_is_a_configuration_error():
    fake = FakeAnthropicTransport()
    with pytest.raises(ConfigurationError, match="leaves no room"):
        extractor(fake, max_tokens=2048, token_budget=2500)


def test_no_retry_when_the_budget_is_spent():
    fake = FakeAnthropicTransport().tool_use(INVALID, input_tokens=3000, output_tokens=1000).tool_use(VALID)
    with pytest.raises(ExtractionFailed) as caught:
        extractor(fake, max_tokens=2048, token_budget=8000).extract(TEXT)
    assert "no room to retry" in str(caught.value) and "lessons.0.severity" in str(caught.value)
    assert caught.value.usage == TokenUsage(3000, 1000)
    assert len(fake.requests) == 1


def test_the_retry_gets_only_what_is_left_of_the_budget():
    fake = FakeAnthropicTransport().tool_use(INVALID, input_tokens=2000, output_tokens=200).tool_use(VALID)
    result = extractor(fake, max_tokens=2048, token_budget=6500).extract(TEXT)
    assert result.attempts == 2
    first, second = fake.requests
    assert first.body["max_tokens"] == 2048
    # 6500 - 2200 spent - (2200 resent + feedback) leaves less than 2048 for the answer.
    assert 200 < second.body["max_tokens"] < 2048
    assert 2200 + 2200 + second.body["max_tokens"] <= 6500


# -- transient API errors ------------------------------------------------------------------------
def test_the_sdk_retries_overload_and_server_errors():
    fake = FakeAnthropicTransport().error(529, "overloaded_error", "Overloaded").error(500, "api_error", "Internal")
    fake.tool_use(VALID)
    result = extractor(fake, max_retries=2).extract(TEXT)
    assert result.attempts == 1
    assert len(fake.requests) == 3
    assert [r.headers.get("x-stainless-retry-count") for r in fake.requests] == ["0", "1", "2"]
    assert fake.requests[0].body == fake.requests[2].body


def test_a_final_server_error_is_one_line_llm_unavailable():
    fake = FakeAnthropicTransport().error(500, "api_error", "Internal server error", times=2)
    with pytest.raises(LLMUnavailable) as caught:
        extractor(fake, max_retries=1).extract(TEXT)
    assert str(caught.value) == "Anthropic API returned 500 api_error after 1 retry: Internal server error; retry later"
    assert len(fake.requests) == 2


def test_client_errors_are_not_retried():
    fake = FakeAnthropicTransport().error(400, "invalid_request_error", "tools.0: bad schema").tool_use(VALID)
    with pytest.raises(ExtractionFailed, match="400 invalid_request_error.*bad schema"):
        extractor(fake, max_retries=3).extract(TEXT)
    assert len(fake.requests) == 1


def test_a_refused_key_is_a_configuration_error_and_not_retried():
    fake = FakeAnthropicTransport().error(401, "authentication_error", "invalid x-api-key").tool_use(VALID)
    with pytest.raises(ConfigurationError, match="401 authentication_error.*invalid x-api-key; fix ANTHROPIC_API_KEY"):
        extractor(fake, max_retries=3).extract(TEXT)
    assert len(fake.requests) == 1


def test_connection_errors_are_retried_then_reported():
    fake = FakeAnthropicTransport().connection_error(times=2)
    with pytest.raises(LLMUnavailable, match="cannot reach the Anthropic API after 1 retry"):
        ClaudeExtractor(fake.client(max_retries=5), max_retries=1).extract(TEXT)
    assert len(fake.requests) == 2


def test_the_default_client_reads_the_key_from_the_environment(monkeypatch, tmp_path):
    for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_PROFILE", "ANTHROPIC_IDENTITY_TOKEN",
                 "ANTHROPIC_IDENTITY_TOKEN_FILE", "ANTHROPIC_FEDERATION_RULE_ID", "ANTHROPIC_ORGANIZATION_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ANTHROPIC_CONFIG_DIR", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.config/anthropic profile either
    with pytest.raises(ConfigurationError, match="no Anthropic credentials: set ANTHROPIC_API_KEY"):
        ClaudeExtractor()

    # A config directory the user named but that holds no profile is a configuration error too.
    monkeypatch.setenv("ANTHROPIC_CONFIG_DIR", str(tmp_path / "empty"))
    with pytest.raises(ConfigurationError, match="Anthropic client configuration"):
        ClaudeExtractor()
    monkeypatch.delenv("ANTHROPIC_CONFIG_DIR")

    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-from-env")
    claude = ClaudeExtractor(max_retries=4)
    assert claude.client.api_key == "sk-from-env"
    assert claude.client.max_retries == 4
    assert ClaudeExtractor().client.max_retries == 2  # the SDK's default


# -- usage accounting --------------------------------------------------------------------------
def test_usage_accumulates_across_calls_and_threads():
    counter = UsageCounter()
    fake = FakeAnthropicTransport().tool_use(VALID, input_tokens=100, output_tokens=10, times=24)
    fake.tool_use(INVALID, input_tokens=7, output_tokens=3, times=2)
    claude = extractor(fake, usage_counter=counter)
    other = extractor(fake, usage_counter=counter)  # two extractors can share one total

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda i: (claude if i % 2 else other).extract(f"{TEXT} ({i})"), range(24)))
    assert sum(r.usage.input_tokens for r in results) == 2400
    with pytest.raises(ExtractionFailed):
        claude.extract(TEXT)

    assert counter.snapshot() == UsageTotals(requests=26, input_tokens=2414, output_tokens=246, extractions=24, failures=1)
    assert claude.usage_counter is other.usage_counter is counter


def test_the_counter_loses_no_updates_under_contention():
    counter = UsageCounter()
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, so lost updates would show
    try:
        def work() -> None:
            for _ in range(5000):
                counter.add_response(TokenUsage(2, 1))

        threads = [threading.Thread(target=work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(previous)
    assert counter.snapshot() == UsageTotals(requests=40000, input_tokens=80000, output_tokens=40000)
