"""The console's operator pages in a real headless Chromium, on the real API, Neo4j and Chroma (issue #14, operate).

A space is seeded through the /v1 API with an ML model (versions, stages, experiments, feature
importances, a drift incident) and a few delegations; the tests sign in with keys of different scopes
and read the ML memory page, run Cypher and reports in the analyst console, and manage keys on the
admin page. Screenshots go to $KGMEM_CONSOLE_SCREENSHOTS when set, as in tests/test_console.py.
"""

from __future__ import annotations

import csv
import io
import uuid
from pathlib import Path

import pytest
from conftest import delete_space
from console_browser import browser, shots  # noqa: F401 - fixtures
from test_console import XSS_SCRIPT, signed_in, wait_until

MODEL = "churn-model"
RUNS = ("xgb-depth4", "xgb-depth6", "xgb-depth8")


@pytest.fixture(scope="module")
def seeded(live_api, gateway):
    space, other = f"operate-{uuid.uuid4().hex[:8]}", f"operate-other-{uuid.uuid4().hex[:8]}"
    api = live_api.client(space)
    api.upsert_entities([{"kind": "Agent", "name": "ml-1", "attributes": {"role": "ml-engineer"}}])
    api.brief({"delegation_id": "retrain", "task": "Retrain the churn model", "project": "Churn"})
    api.record_outcome({"delegation_id": "retrain", "status": "succeeded", "agent": "ml-1", "summary": "Done."})
    api.record_model({"name": MODEL, "project": "Churn", "task": "churn classification", "benchmarks": {"auc": 0.85}})
    for depth, auc in zip((4, 6, 8), (0.81, 0.86, 0.84), strict=True):
        api.record_experiment({"project": "Churn", "name": f"xgb-depth{depth}", "model": MODEL,
                               "parameters": {"max_depth": depth}, "metrics": {"auc": auc, "logloss": 1 - auc},
                               "started_at": f"2026-03-0{depth // 2}T10:00:00Z"})
    api.record_model_version({"model": MODEL, "version": "1", "metrics": {"auc": 0.81}, "stage": "staging",
                              "experiment": "xgb-depth4", "registered_at": "2026-03-02T12:00:00Z",
                              "feature_importance": {"tenure": 0.5, "plan": 0.3}})
    api.record_model_version({"model": MODEL, "version": "2", "metrics": {"auc": 0.86}, "stage": "staging",
                              "experiment": "xgb-depth6", "registered_at": "2026-03-03T12:00:00Z",
                              "feature_importance": {"tenure": 0.4, "plan": 0.2, XSS_SCRIPT: 0.1}})
    api.set_stage({"model": MODEL, "version": "2", "stage": "production", "at": "2026-03-05T09:00:00Z"})
    api.record_drift({"model": MODEL, "version": "2", "feature": "tenure", "metric": "psi", "value": 0.31,
                      "threshold": 0.2, "detected_at": "2026-03-20T08:00:00Z", "severity": "high"})
    live_api.client(other).brief({"delegation_id": "secret-work", "task": "Work of another tenant"})
    tokens = {"admin": live_api.token([space]), "reader": live_api.token([space], ["read"]),
              "analyst": live_api.token(["*"], ["read", "cypher", "admin"], name="analyst"),
              "cypher-one-space": live_api.token([space], ["read", "cypher"])}
    yield {"space": space, "other": other, "tokens": tokens}
    api.close()
    for name in (space, other):
        delete_space(gateway, name)



def visit(browser, live_api, token: str, path: str):
    context, page = signed_in(browser, live_api, token)
    response = page.goto(path)
    return context, page, response


# -- ML memory -------------------------------------------------------------------------------------
def test_the_ml_page_shows_versions_stage_history_experiments_features_and_drift(browser, live_api, seeded, shots):
    context, page, _ = visit(browser, live_api, seeded["tokens"]["admin"], f"/spaces/{seeded['space']}/ml")
    assert page.get_by_role("region", name="Models").get_by_role("link", name=MODEL).is_visible()

    versions = page.get_by_role("region", name=f"Versions of {MODEL}")
    assert versions.locator('tr[data-version="2"] td').nth(1).inner_text() == "production"
    history = versions.locator('tr[data-version="2"] ol.stages li').all_inner_texts()
    assert [line.split(":")[0] for line in history] == ["staging", "production"]
    assert history[-1].endswith("→ now")
    assert "auc 0.85" in versions.inner_text()  # the benchmark to beat

    features = page.get_by_role("region", name="Feature importance across versions")
    assert features.locator('tr[data-feature="tenure"] td').all_inner_texts() == ["tenure", "0.5", "0.4"]
    assert features.locator(f'tr[data-feature="{XSS_SCRIPT}"] td').first.inner_text() == XSS_SCRIPT  # as text
    wait_until(page, "document.getElementById('features-chart')?.chart !== undefined")
    assert page.evaluate("document.getElementById('features-chart').chart.data.datasets.map(d => d.label)") == [
        "v1", "v2"]

    experiments = page.get_by_role("region", name="Experiments")
    assert experiments.locator("tr[data-experiment]").count() == 3
    wait_until(page, "document.getElementById('runs-chart')?.chart !== undefined")
    chart = page.evaluate("(() => { const c = document.getElementById('runs-chart').chart;"
                          " return {runs: c.data.labels, auc: c.data.datasets.find(d => d.label === 'auc').data}; })()")
    assert chart == {"runs": list(RUNS), "auc": [0.81, 0.86, 0.84]}  # oldest run first

    drift = page.get_by_role("region", name="Drift incidents").inner_text()
    assert "psi = 0.31 (threshold 0.2)" in drift and "tenure" in drift and "high" in drift
    page.screenshot(path=shots / "ml.png", full_page=True)
    assert page.errors == []
    context.close()


def test_an_unknown_model_is_a_404_message_and_another_space_is_404(browser, live_api, seeded):
    context, page, response = visit(browser, live_api, seeded["tokens"]["admin"],
                                    f"/spaces/{seeded['space']}/ml?model=no-such-model")
    assert response.status == 404 and "no-such-model" in page.get_by_role("alert").inner_text()
    for path in ("ml", "cypher", "admin"):
        assert page.goto(f"/spaces/{seeded['other']}/{path}").status == 404, path
        assert "Work of another tenant" not in page.content()
    context.close()


# -- the analyst console ---------------------------------------------------------------------------
def test_a_read_query_shows_a_table_and_a_graph_of_the_nodes_it_returned(browser, live_api, seeded, shots):
    context, page, _ = visit(browser, live_api, seeded["tokens"]["analyst"], f"/spaces/{seeded['space']}/cypher")
    page.get_by_label("Query").fill("MATCH (v:ModelVersion {space: $space})-[r:VERSION_OF]->(m:Model)\n"
                                    "RETURN v.version AS version, v, r, m ORDER BY version")
    page.get_by_role("button", name="Run", exact=True).click()
    result = page.get_by_role("region", name="Result")
    assert result.locator("table.result thead th").all_inner_texts() == ["version", "v", "r", "m"]
    assert [row.locator("td").first.inner_text() for row in result.locator("table.result tbody tr").all()] == ["1", "2"]
    wait_until(page, "document.getElementById('result-graph')?.cy !== undefined")
    counts = page.evaluate("(() => { const cy = document.getElementById('result-graph').cy;"
                           " return [cy.nodes().length, cy.edges().length]; })()")
    assert counts == [3, 2]  # two versions and the model; each version's VERSION_OF
    labels = page.evaluate("document.getElementById('result-graph').cy.nodes().map(n => n.data('label')).sort()")
    assert len(labels) == 3 and MODEL in labels
    page.screenshot(path=shots / "cypher.png", full_page=True)

    with page.expect_download() as download:
        result.get_by_role("button", name="Download these rows as CSV").click()
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text(encoding="utf-8"))))
    assert rows[0] == ["version", "v", "r", "m"] and [row[0] for row in rows[1:]] == ["1", "2"]
    assert download.value.suggested_filename == f"{seeded['space']}-cypher.csv"
    assert page.errors == []
    context.close()


def test_a_write_query_is_refused_with_the_guards_message(browser, live_api, seeded):
    context, page, _ = visit(browser, live_api, seeded["tokens"]["analyst"], f"/spaces/{seeded['space']}/cypher")
    page.get_by_label("Query").fill("CREATE (n:Entity {space: $space, name: 'written'}) RETURN n")
    page.get_by_role("button", name="Run", exact=True).click()
    assert "only runs read-only queries" in page.get_by_role("alert").inner_text()
    assert page.get_by_label("Query").input_value().startswith("CREATE")  # kept to be fixed
    assert live_api.gateway.rows("MATCH (n:Entity {name: 'written'}) RETURN n") == []
    context.close()


def test_a_named_report_runs_from_its_form_and_downloads_as_csv(browser, live_api, seeded):
    context, page, _ = visit(browser, live_api, seeded["tokens"]["analyst"], f"/spaces/{seeded['space']}/cypher")
    report = page.locator('details[data-report="model-vs-benchmark"]')
    report.locator("summary").click()
    report.get_by_role("button", name="Run model-vs-benchmark").click()
    result = page.get_by_role("region", name="Result: model-vs-benchmark")
    assert MODEL in result.locator("table.result").inner_text()
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    response = page.request.post(f"/spaces/{seeded['space']}/cypher/csv",
                                 form={"csrf_token": csrf, "report": "model-vs-benchmark"})
    assert response.status == 200 and response.headers["content-type"].startswith("text/csv")
    assert MODEL in response.text()
    bad = page.request.post(f"/spaces/{seeded['space']}/cypher",
                            form={"csrf_token": csrf, "report": "agent-success", "param.since": "yesterday"})
    assert bad.status == 422 and "since" in bad.text()
    forged = page.request.post(f"/spaces/{seeded['space']}/cypher/csv", form={"csrf_token": "forged", "query": "RETURN 1"})
    assert forged.status == 403
    context.close()


def test_keys_without_cypher_or_admin_see_no_such_links_and_those_urls_refuse(browser, live_api, seeded):
    context, page, _ = visit(browser, live_api, seeded["tokens"]["reader"], f"/spaces/{seeded['space']}/ml")
    nav = page.get_by_role("navigation", name="Space")
    assert nav.get_by_role("link", name="ML").is_visible()
    assert nav.get_by_role("link", name="Cypher").count() == 0 and nav.get_by_role("link", name="Admin").count() == 0
    for path, scope in (("cypher", "cypher"), ("admin", "admin")):
        response = page.goto(f"/spaces/{seeded['space']}/{path}")
        assert response.status == 403 and f"'{scope}' scope" in page.get_by_role("alert").inner_text()
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    for path in ("cypher", "admin/keys", "admin/reindex"):
        refused = page.request.post(f"/spaces/{seeded['space']}/{path}", form={"csrf_token": csrf, "name": "x",
                                                                              "scopes": "read", "query": "RETURN 1"})
        assert refused.status == 403, path
    context.close()

    context, page, response = visit(browser, live_api, seeded["tokens"]["cypher-one-space"],
                                    f"/spaces/{seeded['space']}/cypher")
    assert response.status == 403 and "all spaces" in page.get_by_role("alert").inner_text()  # as /v1 says
    context.close()


# -- admin -----------------------------------------------------------------------------------------
def test_an_admin_creates_a_key_sees_its_token_once_lists_and_revokes_it(browser, live_api, seeded, shots):
    context, page, _ = visit(browser, live_api, seeded["tokens"]["admin"], f"/spaces/{seeded['space']}/admin")
    page.get_by_label("Name").fill(f"ci {XSS_SCRIPT}")
    page.get_by_label("write").check()
    page.get_by_role("button", name="Create key").click()
    token = page.get_by_label("Token").input_value()
    assert token.startswith("kgm_")
    row = page.locator("table.keys tbody tr", has_text=f"ci {XSS_SCRIPT}")
    assert row.locator("td").nth(2).inner_text() == "read, write" and "active" in row.inner_text()
    assert live_api.http(token).get(f"/v1/spaces/{seeded['space']}/admin/stats").status_code == 403  # no admin
    assert live_api.http(token).get(f"/v1/spaces/{seeded['space']}/reports").status_code == 200
    page.screenshot(path=shots / "admin.png", full_page=True)

    page.goto(f"/spaces/{seeded['space']}/admin")  # the token was on that answer only
    assert page.get_by_label("Token").count() == 0 and token not in page.content()
    row.get_by_role("button", name=f"Revoke ci {XSS_SCRIPT}").click()
    assert "Revoked" in page.get_by_role("status").first.inner_text()
    assert "revoked" in page.locator("table.keys tbody tr", has_text=f"ci {XSS_SCRIPT}").inner_text()
    assert live_api.http(token).get(f"/v1/spaces/{seeded['space']}/reports").status_code == 401
    assert page.errors == []
    context.close()


def test_the_admin_page_shows_health_and_stats_and_a_reindex_runs_to_the_end_while_polled(browser, live_api, seeded):
    context, page, _ = visit(browser, live_api, seeded["tokens"]["admin"], f"/spaces/{seeded['space']}/admin")
    assert page.locator("#health-status").inner_text() in ("ready", "degraded")
    assert page.locator('dd[data-check="neo4j"]').inner_text() == "ok"
    assert int(page.locator('dd[data-stat="vectors"]').inner_text()) > 0
    page.get_by_role("button", name="Reindex this space").click()
    assert "job=" in page.url
    wait_until(page, "document.getElementById('job')?.dataset.state === 'succeeded'", timeout_s=30)  # htmx polled
    assert "succeeded" in page.locator("#job").inner_text()
    assert page.errors == []
    context.close()
