"""The console's explore pages in a real headless Chromium, on the real API, Neo4j and Chroma (issue #14, second slice):
the brief as the agent received it, search with per-channel explanations, and an entity's page with its
observations on a validity timeline, its revisions, provenance and neighbourhood graph.

The space is seeded through the /v1 API as in tests/test_console.py; screenshots go to
$KGMEM_CONSOLE_SCREENSHOTS when set (`docs/console` refreshes the committed ones).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from conftest import delete_space
from console_browser import browser, shots  # noqa: F401 - fixtures
from test_console import signed_in, wait_until

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMAGE = "<img src=x onerror=alert(1)>"
RETRAIN = "churn-retrain"
OLD_FACT = "The churn model trains on the February snapshot"
NEW_FACT = "The churn model trains on the March snapshot"
WRONG_FACT = "The churn model is written in COBOL"
NEIGHBOURS = ("ml-1", "march-snapshot", "tenure", XSS_IMAGE)  # one hop from the model


@pytest.fixture(scope="module")
def seeded(live_api, gateway):
    """A model with a history (superseded and retracted facts, a revision) and neighbours, in one space of two."""
    space, other = f"explore-{uuid.uuid4().hex[:8]}", f"explore-other-{uuid.uuid4().hex[:8]}"
    api = live_api.client(space)
    api.upsert_entities([
        {"kind": "Project", "name": "Churn", "summary": "Predict which customers leave"},
        {"kind": "Agent", "name": "ml-1", "attributes": {"role": "ml-engineer"}},
        {"kind": "Model", "name": "churn-model", "summary": "Gradient boosting on customer activity",
         "aliases": ["churn-gbm"], "attributes": {"framework": "lightgbm"}},
        {"kind": "Dataset", "name": "march-snapshot"}, {"kind": "Feature", "name": "tenure"},
        {"kind": "Incident", "name": XSS_IMAGE}, {"kind": "Feature", "name": "plan-changes"}])
    api.upsert_entities([{"kind": "Model", "name": "churn-model", "attributes": {"framework": "xgboost"}}])  # a revision
    model = api.get_entity(api.search("churn-model", kinds=["Model"]).items[0].entity.id)
    before = datetime.now(UTC) - timedelta(days=30)
    old = api.add_observations([{"entity": {"id": model.id}, "text": OLD_FACT, "valid_from": before.isoformat(),
                                 "provenance": {"agent": "ml-1", "delegation_id": RETRAIN, "source": "outcome"}}])[0]
    api.add_observations([{"entity": {"id": model.id}, "text": NEW_FACT, "supersedes": old.id,
                           "valid_from": (before + timedelta(days=20)).isoformat()}])
    wrong = api.add_observations([{"entity": {"id": model.id}, "text": WRONG_FACT,
                                   "valid_from": (before + timedelta(days=1)).isoformat()}])[0]
    api.retract_observations([wrong.id])
    api.upsert_relations([
        {"source": {"name": "ml-1"}, "type": "PRODUCED", "target": {"id": model.id}},
        {"source": {"id": model.id}, "type": "TRAINED_ON", "target": {"name": "march-snapshot"}},
        {"source": {"id": model.id}, "type": "USES_FEATURE", "target": {"name": "tenure"}},
        {"source": {"name": XSS_IMAGE}, "type": "CAUSED", "target": {"id": model.id}},
        {"source": {"name": "ml-1"}, "type": "LEADS_ANALYSIS_FOR", "target": {"name": "Churn"}},  # two hops away
        {"source": {"name": "tenure"}, "type": "FEEDS_INTO", "target": {"name": "plan-changes"}},  # two hops away
    ])
    brief = api.brief({"delegation_id": RETRAIN, "task": "Retrain the churn model on the March snapshot",
                       "project": "Churn", "agent_role": "ml-engineer"})
    live_api.client(other).upsert_entities([{"kind": "Model", "name": "secret-model"}])
    secret = live_api.client(other).search("secret-model").items[0].entity.id
    tokens = {"admin": live_api.token([space]), "reader": live_api.token([space], ["read"])}
    yield {"space": space, "other": other, "model": model.id, "secret": secret, "tokens": tokens, "api": api,
           "brief": brief, "before": before}
    api.close()
    for name in (space, other):
        delete_space(gateway, name)



# -- the brief -------------------------------------------------------------------------------------
def test_a_brief_recorded_through_the_api_appears_rendered_on_its_delegation_page(browser, live_api, seeded):
    context, page = signed_in(browser, live_api, seeded["tokens"]["reader"])
    page.goto(f"/spaces/{seeded['space']}/delegations/{RETRAIN}")
    shown = page.get_by_role("region", name="The brief as the agent received it")
    assert shown.locator("h3").first.inner_text() == "Brief: Retrain the churn model on the March snapshot"
    assert seeded["brief"].markdown.splitlines()[1].replace("`", "") in shown.inner_text()
    assert f"budget of {seeded['brief'].budget_tokens} tokens" in shown.inner_text()
    assert page.locator("h1").count() == 1  # the brief's headings sit under the page's
    assert page.errors == []
    context.close()


# -- search ----------------------------------------------------------------------------------------
def test_search_shows_each_hits_channel_scores_boosts_passage_and_graph_path(browser, live_api, seeded, shots):
    context, page = signed_in(browser, live_api, seeded["tokens"]["reader"])
    page.get_by_role("link", name="Search").click()
    assert "Ask a question" in page.get_by_role("region", name="Results").inner_text()
    page.get_by_label("Question or topic").fill("which snapshot does the churn model train on?")
    page.get_by_role("button", name="Search").click()
    hits = page.locator("li.hit")
    assert hits.count() > 0
    fact = hits.filter(has=page.locator(".passage", has_text=NEW_FACT))
    assert fact.count() == 1
    channels = fact.locator("table.channels tbody tr")
    assert {"keyword", "vector"} <= {row.get_attribute("data-channel") for row in channels.all()}
    assert int(fact.locator("tr[data-channel=keyword] td").nth(2).inner_text()) >= 1  # its keyword rank
    assert fact.locator("meter").count() == channels.count()
    assert fact.get_by_role("link", name="churn-model").get_attribute("href").endswith(f"/entities/{seeded['model']}")
    paths = page.locator("p.path")
    assert paths.count() > 0 and "→" in paths.first.inner_text()  # graph hits say how they were reached
    page.screenshot(path=shots / "search.png", full_page=True)
    assert OLD_FACT not in page.locator("#search-results").inner_text()  # superseded: not valid now
    assert WRONG_FACT not in page.locator("#search-results").inner_text()  # retracted
    assert page.errors == []
    context.close()


def test_search_as_of_a_past_time_finds_the_fact_valid_then_and_filters_by_kind(browser, live_api, seeded):
    context, page = signed_in(browser, live_api, seeded["tokens"]["reader"])
    then = (seeded["before"] + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M")
    page.goto(f"/spaces/{seeded['space']}/search?q=churn+model+snapshot&as_of={then}")
    assert OLD_FACT in page.locator("#search-results").inner_text()
    assert NEW_FACT not in page.locator("#search-results").inner_text()
    page.goto(f"/spaces/{seeded['space']}/search?q=churn&kinds=Feature")
    kinds = {tag.inner_text() for tag in page.locator("li.hit .hit-title .tag").all()}
    assert kinds == {"Feature"}
    response = page.goto(f"/spaces/{seeded['space']}/search?q=churn&as_of=someday")
    assert response.status == 422 and "as_of" in page.locator("main").inner_text()
    context.close()


# -- an entity -------------------------------------------------------------------------------------
def test_the_entity_page_shows_attributes_observations_by_validity_revisions_and_provenance(
        browser, live_api, seeded, shots):
    context, page = signed_in(browser, live_api, seeded["tokens"]["reader"])
    page.goto(f"/spaces/{seeded['space']}/entities/{seeded['model']}")
    facts = page.get_by_role("region", name="Attributes").inner_text()
    assert "churn-gbm" in facts and "xgboost" in facts
    states = {item.locator("p").first.inner_text().split(" ", 1)[1]: item.get_attribute("data-state")
              for item in page.locator("ol.timeline li").all()}
    assert states == {NEW_FACT: "valid", OLD_FACT: "superseded", WRONG_FACT: "retracted"}
    old = page.locator("ol.timeline li", has_text=OLD_FACT)
    assert old.get_by_role("link", name=RETRAIN).get_attribute("href").endswith(f"/delegations/{RETRAIN}")
    assert "by ml-1" in old.inner_text()
    assert page.evaluate("document.querySelector('ol.timeline .bar').style.width") != ""  # placed by explore.js
    diff = page.get_by_role("region", name="Revisions").locator("table.diff tr", has_text="xgboost")
    assert diff.locator("del").inner_text() == "lightgbm" and diff.locator("ins").inner_text() == "xgboost"
    wait_until(page, "document.getElementById('graph').dataset.nodeCount !== undefined")
    page.screenshot(path=shots / "entity.png", full_page=True)

    then = (seeded["before"] + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    page.goto(f"/spaces/{seeded['space']}/entities/{seeded['model']}?as_of={then}")
    states = {item.locator("p").first.inner_text().split(" ", 1)[1]: item.get_attribute("data-state")
              for item in page.locator("ol.timeline li").all()}
    assert states == {NEW_FACT: "later", OLD_FACT: "valid", WRONG_FACT: "valid"}  # retracted only later
    slider = page.get_by_label("As of")
    assert slider.get_attribute("type") == "range"
    assert int(slider.get_attribute("min")) <= int(seeded["before"].timestamp()) <= int(slider.get_attribute("value"))
    assert page.errors == []
    context.close()


def node_names(page) -> set[str]:
    return set(page.evaluate("window.cy.nodes().map(n => n.data('name'))"))


def test_the_neighbourhood_graph_draws_the_neighbours_expands_on_click_and_filters(browser, live_api, seeded, shots):
    context, page = signed_in(browser, live_api, seeded["tokens"]["reader"])
    page.goto(f"/spaces/{seeded['space']}/entities/{seeded['model']}")
    wait_until(page, "document.getElementById('graph').dataset.nodeCount === '5'")
    assert node_names(page) == {"churn-model", *NEIGHBOURS}
    assert page.evaluate("window.cy.edges().length") == 4
    page.evaluate("window.cy.getElementById(window.cy.nodes().filter(n => n.data('name') === 'tenure')[0].id())"
                  ".emit('tap')")
    wait_until(page, "document.getElementById('graph').dataset.nodeCount === '6'")
    assert "plan-changes" in node_names(page)
    page.screenshot(path=shots / "entity-graph.png")

    page.get_by_label("Relation type").select_option("TRAINED_ON")
    wait_until(page, "document.getElementById('graph').dataset.nodeCount === '2'")
    assert node_names(page) == {"churn-model", "march-snapshot"}
    page.get_by_label("Relation type").select_option("")
    page.get_by_label("Depth").select_option("2")
    wait_until(page, "document.getElementById('graph').dataset.nodeCount === '7'")
    assert {"Churn", "plan-changes"} <= node_names(page)
    page.get_by_label("Kind").select_option("Feature")
    wait_until(page, "document.getElementById('graph').dataset.nodeCount === '3'")
    page.get_by_role("button", name="Fit to screen").click()
    assert page.errors == []
    context.close()


def test_the_graph_route_is_bounded_with_a_more_flag_and_refuses_a_bad_depth(browser, live_api, seeded):
    context, page = signed_in(browser, live_api, seeded["tokens"]["reader"])
    route = f"/spaces/{seeded['space']}/entities/{seeded['model']}/graph"
    one = page.request.get(f"{route}?limit=1").json()
    assert len(one["nodes"]) == 2 and one["more"] is True  # the entity and its top neighbour
    every = page.request.get(f"{route}?limit=300").json()
    assert len(every["nodes"]) == 5 and every["more"] is False
    assert {(e["type"]) for e in every["edges"]} == {"PRODUCED", "TRAINED_ON", "USES_FEATURE", "CAUSED"}
    refused = page.request.get(f"{route}?depth=3")
    assert refused.status == 422 and "depth" in refused.text()
    context.close()


ENTITY_PAGE_QUERIES = 8  # the session's key, the entity's history (four), the page's shell
GRAPH_QUERIES = 5  # the session's key, the entity, its top neighbours, the relations among them


def test_the_entity_page_and_graph_make_a_fixed_number_of_neo4j_queries_whatever_the_entitys_size(
        browser, live_api, seeded, gateway):
    context, page = signed_in(browser, live_api, seeded["tokens"]["reader"])
    incident = seeded["api"].search(XSS_IMAGE, kinds=["Incident"]).items[0].entity.id
    calls: list[str] = []
    stop = gateway.observe(lambda operation, seconds: calls.append(operation))
    try:
        counts = {}
        for name, entity_id in (("big", seeded["model"]), ("small", incident)):
            for what, path in (("page", ""), ("graph", "/graph?depth=2&limit=300")):
                calls.clear()
                response = page.request.get(f"/spaces/{seeded['space']}/entities/{entity_id}{path}")
                assert response.ok
                counts[name, what] = len(calls)
    finally:
        stop()
    assert counts["big", "page"] == counts["small", "page"] <= ENTITY_PAGE_QUERIES, counts
    assert counts["big", "graph"] == counts["small", "graph"] <= GRAPH_QUERIES, counts
    context.close()


# -- safety ----------------------------------------------------------------------------------------
def test_html_names_render_as_text_in_the_page_and_the_graph_labels(browser, live_api, seeded):
    context, page = signed_in(browser, live_api, seeded["tokens"]["reader"])
    incident = seeded["api"].search(XSS_IMAGE, kinds=["Incident"]).items[0].entity.id
    page.goto(f"/spaces/{seeded['space']}/entities/{incident}")
    assert page.locator("h1").inner_text().endswith(XSS_IMAGE)
    assert page.locator("img[src=x]").count() == 0
    wait_until(page, "document.getElementById('graph').dataset.nodeCount === '2'")
    assert XSS_IMAGE in node_names(page)  # a canvas label: text, never markup
    page.goto(f"/spaces/{seeded['space']}/search?q={XSS_SCRIPT}")
    assert page.locator("script:not([src])").count() == 0
    assert page.errors == []  # no alert() ran
    context.close()


def test_another_spaces_entity_is_404_on_the_page_and_the_graph_route(browser, live_api, seeded):
    context, page = signed_in(browser, live_api, seeded["tokens"]["reader"])
    for path in (f"/spaces/{seeded['space']}/entities/{seeded['secret']}",
                 f"/spaces/{seeded['space']}/entities/{seeded['secret']}/graph",
                 f"/spaces/{seeded['other']}/entities/{seeded['secret']}",
                 f"/spaces/{seeded['other']}/search?q=secret"):
        response = page.goto(path)
        assert response.status == 404, path
        assert "secret-model" not in page.content()
    context.close()
