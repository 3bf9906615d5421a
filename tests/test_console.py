"""The web console in a real headless Chromium, on the real API, Neo4j and Chroma (issue #14, first slice).

A space is seeded through the /v1 API the way an orchestrator fills it: a project, agents, an open
incident, delegations with briefs and outcomes (metrics, artifacts, lessons, feedback), and names
that are HTML. The tests sign in with API keys and read what each page shows.

Each page's screenshot is saved to $KGMEM_CONSOLE_SCREENSHOTS when set (`docs/console` refreshes the
committed ones), else to the test's temporary directory.
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from conftest import delete_space
from console_browser import browser, shots  # noqa: F401 - fixtures

from api.console import reads

XSS_SCRIPT = "<script>alert(1)</script>"
XSS_IMAGE = "<img src=x onerror=alert(1)>"
RETRAIN = "churn-retrain"
EVALUATE = "churn-eval"
XSS_DELEGATION = "xss-check"
LESSON = "Pin the snapshot date in the training config"


# -- the seeded spaces, the keys and the browser ---------------------------------------------------
@pytest.fixture(scope="module")
def seeded(live_api, gateway):
    """A space filled through the API, another space with a delegation of its own, and keys for both."""
    space, other = f"console-{uuid.uuid4().hex[:8]}", f"console-other-{uuid.uuid4().hex[:8]}"
    api = live_api.client(space)
    api.upsert_entities([
        {"kind": "Project", "name": "Churn", "summary": "Predict which customers leave"},
        {"kind": "Agent", "name": "ml-1", "attributes": {"role": "ml-engineer"}},
        {"kind": "Agent", "name": XSS_IMAGE, "attributes": {"role": "tester"}},
        {"kind": "Incident", "name": XSS_SCRIPT, "attributes": {"severity": "high", "status": "open"}},
    ])
    api.brief({"delegation_id": RETRAIN, "task": "Retrain the churn model on the April snapshot",
               "project": "Churn", "agent_role": "ml-engineer"})
    api.record_outcome({
        "delegation_id": RETRAIN, "status": "succeeded", "agent": "ml-1",
        "summary": "Retrained on the April snapshot; **AUC 0.87**, up from 0.86.", "metrics": {"auc": 0.87},
        "duration_s": 3600, "cost_usd": 4.5,
        "artifacts": [{"kind": "dataset", "name": "april-snapshot", "role": "used"}],
        "lessons": [{"text": LESSON, "severity": "high"}]})
    evaluation = api.brief({"delegation_id": EVALUATE, "task": "Retrain the churn model on the May snapshot",
                            "project": "Churn", "agent_role": "ml-engineer"})
    lesson_ids = [lesson.id for lesson in evaluation.lessons]
    api.record_outcome({"delegation_id": EVALUATE, "status": "failed", "agent": "ml-1",
                        "summary": "The May snapshot was missing a week.",
                        "failure_cause": "missing data for the first week of May", "helpful": lesson_ids[:1]})
    api.brief({"delegation_id": XSS_DELEGATION, "task": f"Check {XSS_SCRIPT} handling", "project": XSS_IMAGE})
    api.record_outcome({"delegation_id": XSS_DELEGATION, "status": "running",
                        "summary": f"Found {XSS_SCRIPT} and [a link](javascript:alert(1)) in the input"})
    live_api.client(other).brief({"delegation_id": "secret-work", "task": "Work of another tenant"})
    tokens = {"admin": live_api.token([space]), "reader": live_api.token([space], ["read"]),
              "other": live_api.token([other])}
    yield {"space": space, "other": other, "tokens": tokens, "lesson_ids": lesson_ids, "api": api}
    api.close()
    for name in (space, other):
        delete_space(gateway, name)



def wait_until(page, expression: str, timeout_s: float = 10.0) -> None:
    """Poll a JavaScript expression until it is true. Not `page.wait_for_function`: its polling evals the
    expression inside the page, which the console's Content-Security-Policy (rightly) refuses."""
    deadline = time.monotonic() + timeout_s
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"still false after {timeout_s} s: {expression}"
        page.wait_for_timeout(50)


def signed_in(browser, live_api, token: str, *, width: int = 1280, height: int = 900):
    """A fresh browser context signed in through the sign-in form; it fails the test on any JS dialog or error."""
    context = browser.new_context(base_url=live_api.base_url, viewport={"width": width, "height": height})
    page = context.new_page()
    page.errors = []
    page.on("dialog", lambda dialog: page.errors.append(f"dialog: {dialog.message}") or dialog.dismiss())
    page.on("pageerror", lambda error: page.errors.append(f"page error: {error}"))
    page.on("console", lambda message: message.type == "error" and page.errors.append(f"console: {message.text}"))
    page.goto("/")
    assert page.url.endswith("/sign-in?next=%2F")
    page.get_by_label("API key").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state("load")
    return context, page


# -- sign-in and sessions --------------------------------------------------------------------------
def test_signing_in_with_a_key_of_one_space_opens_its_overview_in_an_httponly_strict_cookie(browser, live_api, seeded):
    context, page = signed_in(browser, live_api, seeded["tokens"]["admin"])
    assert page.url == f"{live_api.base_url}/spaces/{seeded['space']}"
    cookie = next(c for c in context.cookies() if c["name"] == "kgmem_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert seeded["tokens"]["admin"] not in cookie["value"]  # the session names the key, never holds it
    page.get_by_role("button", name="Sign out").click()
    assert "/sign-in" in page.url
    page.goto(f"/spaces/{seeded['space']}")
    assert "/sign-in" in page.url
    context.close()


def test_a_key_bound_to_two_spaces_is_offered_both_and_no_other(browser, live_api, seeded):
    token = live_api.token([seeded["space"], seeded["other"]], ["read"], name="two spaces")
    context, page = signed_in(browser, live_api, token)
    assert page.get_by_role("heading", name="Spaces").is_visible()
    assert page.locator("ul.spaces a").all_inner_texts() == sorted([seeded["space"], seeded["other"]])
    page.get_by_role("link", name=seeded["other"]).click()
    assert page.get_by_role("heading", name=f"Overview of {seeded['other']}").is_visible()
    context.close()


def test_a_bad_key_or_a_form_without_its_csrf_token_is_refused_with_a_message(browser, live_api, seeded):
    context = browser.new_context(base_url=live_api.base_url)
    page = context.new_page()
    page.goto("/sign-in")
    page.get_by_label("API key").fill("kgm_notarealkey1_" + "x" * 43)
    page.get_by_role("button", name="Sign in").click()
    assert "not valid, or it was revoked" in page.get_by_role("alert").inner_text()
    forged = page.request.post("/sign-in", form={"token": seeded["tokens"]["admin"], "csrf_token": "forged"},
                               max_redirects=0)
    assert forged.status == 403 and "security token" in forged.text()
    context.close()


def test_revoking_the_key_ends_its_console_sessions(browser, live_api, seeded):
    token = live_api.token([seeded["space"]], ["read"], name="to revoke")
    context, page = signed_in(browser, live_api, token)
    assert page.get_by_role("heading", name=f"Overview of {seeded['space']}").is_visible()
    live_api.app.state.key_store.revoke(live_api.key_ids[-1])
    page.reload()
    assert "/sign-in" in page.url
    context.close()


# -- the overview ----------------------------------------------------------------------------------
def test_the_overview_shows_counts_growth_delegations_incidents_risks_kpis_and_vector_sync(
        browser, live_api, seeded, shots):
    context, page = signed_in(browser, live_api, seeded["tokens"]["admin"])
    assert page.locator('td[data-kind="Delegation"]').inner_text() == "3"
    assert page.locator('td[data-kind="Lesson"]').inner_text() == "1"
    wait_until(page, "document.getElementById('growth-chart')?.chart !== undefined")
    datasets = page.evaluate("document.getElementById('growth-chart').chart.data.datasets.map(d => d.label)")
    assert datasets == ["Entities", "Observations"]

    recent = page.get_by_role("region", name="Recent delegations")
    for delegation_id in (RETRAIN, EVALUATE, XSS_DELEGATION):
        assert recent.get_by_role("link", name=delegation_id).is_visible()
    assert XSS_SCRIPT in page.get_by_role("region", name="Open incidents").inner_text()
    risks = page.get_by_role("region", name="Risks: failed delegations").inner_text()
    assert EVALUATE in risks and "missing data for the first week of May" in risks
    lessons = page.get_by_role("region", name="Recent lessons")
    assert LESSON in lessons.inner_text()
    assert lessons.get_by_role("link", name=RETRAIN).get_attribute("href").endswith(f"/delegations/{RETRAIN}")

    kpis = page.locator("section.kpi")
    assert [kpis.nth(i).get_attribute("data-report") for i in range(kpis.count())] == [
        "on-time-delivery", "success-by-agent", "model-vs-benchmark", "lessons-reused"]
    success = page.locator('section[data-report="success-by-agent"]')
    assert "ml-1" in success.inner_text() and "0.5" in success.inner_text()  # one succeeded, one failed
    bars = page.evaluate("document.querySelector('section[data-report=\"success-by-agent\"] canvas').chart"
                         ".data.labels")
    assert "ml-1" in bars

    sync = page.get_by_role("region", name="Vector sync")
    assert int(sync.locator("#vectors").inner_text()) > 0
    assert sync.get_by_role("button", name="Reindex this space").is_visible()  # an admin key
    page.screenshot(path=shots / "overview.png", full_page=True)
    assert page.errors == []
    context.close()


def test_an_admin_starts_a_reindex_from_the_overview_through_a_csrf_protected_form(browser, live_api, seeded):
    context, page = signed_in(browser, live_api, seeded["tokens"]["admin"])
    page.get_by_role("button", name="Reindex this space").click()
    assert "Reindex started (job" in page.get_by_role("status").inner_text()
    context.close()


def test_a_read_only_key_sees_no_admin_or_write_action_and_cannot_post_one(browser, live_api, seeded):
    context, page = signed_in(browser, live_api, seeded["tokens"]["reader"])
    assert page.get_by_role("heading", name=f"Overview of {seeded['space']}").is_visible()
    assert page.get_by_role("button", name="Reindex this space").count() == 0
    assert [f.get_attribute("action") for f in page.locator("form[method=post]").all()] == ["/sign-out"]
    csrf = page.locator("input[name=csrf_token]").first.get_attribute("value")
    refused = page.request.post(f"/spaces/{seeded['space']}/reindex", form={"csrf_token": csrf}, max_redirects=0)
    assert refused.status == 403 and "admin" in refused.text()
    context.close()


def test_the_overview_is_readable_at_390_px_without_sideways_scrolling(browser, live_api, seeded, shots):
    context, page = signed_in(browser, live_api, seeded["tokens"]["admin"], width=390, height=844)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=shots / "overview-390px.png", full_page=True)
    context.close()


# -- delegations -----------------------------------------------------------------------------------
def test_the_delegations_table_filters_by_status_and_project_and_pages(browser, live_api, seeded, shots, monkeypatch):
    context, page = signed_in(browser, live_api, seeded["tokens"]["admin"])
    page.goto(f"/spaces/{seeded['space']}/delegations")
    rows = page.locator("table.delegations tbody tr")
    assert rows.count() == 3
    timeline = "document.getElementById('timeline-chart')?.chart"
    wait_until(page, f"{timeline} !== undefined")
    assert sorted(page.evaluate(f"{timeline}.data.labels")) == sorted([RETRAIN, EVALUATE, XSS_DELEGATION])
    page.screenshot(path=shots / "delegations.png", full_page=True)

    page.get_by_label("Status").select_option("failed")  # htmx swaps the results and updates the address
    page.wait_for_url("**status=failed**")
    wait_until(page, "document.querySelectorAll('table.delegations tbody tr').length === 1")
    assert rows.first.get_by_role("link").inner_text() == EVALUATE
    wait_until(page, f"{timeline} !== undefined && {timeline}.data.labels.length === 1")
    assert page.evaluate(f"{timeline}.data.labels") == [EVALUATE]

    page.goto(f"/spaces/{seeded['space']}/delegations?project={XSS_IMAGE}")
    assert [r.get_by_role("link").inner_text() for r in rows.all()] == [XSS_DELEGATION]

    monkeypatch.setattr(reads, "PAGE_SIZE", 2)  # the server runs in this process
    page.goto(f"/spaces/{seeded['space']}/delegations")
    assert rows.count() == 2
    page.get_by_role("link", name="Older →").click()
    assert rows.count() == 1 and "page=2" in page.url
    assert page.get_by_role("link", name="Older →").count() == 0
    assert page.errors == []  # htmx swapped under the CSP without a violation
    context.close()


def test_a_bad_filter_is_a_422_that_names_the_field_as_on_v1(browser, live_api, seeded):
    context, page = signed_in(browser, live_api, seeded["tokens"]["admin"])
    response = page.goto(f"/spaces/{seeded['space']}/delegations?since=yesterday")
    assert response.status == 422
    assert "since" in page.get_by_role("alert").inner_text()
    assert "Traceback" not in page.content()
    context.close()


def test_a_delegation_page_shows_task_outcome_metrics_artifacts_lessons_and_what_its_brief_showed(
        browser, live_api, seeded, shots):
    context, page = signed_in(browser, live_api, seeded["tokens"]["admin"])
    page.goto(f"/spaces/{seeded['space']}/delegations/{RETRAIN}")
    assert page.locator(".task").inner_text() == "Retrain the churn model on the April snapshot"
    assert page.locator(".outcome strong").inner_text() == "AUC 0.87"  # the summary's markdown, rendered
    assert "0.87" in page.get_by_role("region", name="Metrics").inner_text()
    assert "april-snapshot" in page.get_by_role("region", name="Artifacts").inner_text()
    lessons = page.get_by_role("region", name="Lessons learned")
    assert LESSON in lessons.inner_text()
    assert lessons.get_by_role("link", name=RETRAIN).get_attribute("href").startswith(
        f"/spaces/{seeded['space']}/delegations/{RETRAIN}#lesson-")
    page.screenshot(path=shots / "delegation.png", full_page=True)

    page.goto(f"/spaces/{seeded['space']}/delegations/{EVALUATE}")
    shown = page.get_by_role("region", name="What the brief showed")
    assert seeded["lesson_ids"], "the second brief should show the first delegation's lesson"
    lesson_item = shown.locator(f'li[data-id="{seeded["lesson_ids"][0]}"]')
    assert LESSON in lesson_item.inner_text() and "helpful" in lesson_item.inner_text()
    assert "1 helpful" in page.get_by_role("region", name="Feedback votes").inner_text()
    assert "missing data for the first week of May" in page.get_by_role("region", name="Delegation").inner_text()
    assert page.errors == []
    context.close()


def test_a_brief_recorded_through_the_api_appears_on_its_delegation_page(browser, live_api, seeded):
    brief = seeded["api"].brief({"delegation_id": "churn-monitor", "task": "Set up drift monitoring for churn",
                                 "project": "Churn", "agent_role": "ml-engineer"})
    context, page = signed_in(browser, live_api, seeded["tokens"]["admin"])
    page.goto(f"/spaces/{seeded['space']}/delegations/churn-monitor")
    assert page.locator(".task").inner_text() == "Set up drift monitoring for churn"
    assert "planned" in page.locator("h1").inner_text()
    shown = page.get_by_role("region", name="What the brief showed").locator("li")
    assert [item.get_attribute("data-id") for item in shown.all()] == brief.shown_ids
    context.close()


# -- agents ----------------------------------------------------------------------------------------
def test_the_agents_page_shows_track_records_load_success_over_time_and_recent_work(browser, live_api, seeded, shots):
    context, page = signed_in(browser, live_api, seeded["tokens"]["admin"])
    page.get_by_role("link", name="Agents").click()
    assert page.url.endswith(f"/spaces/{seeded['space']}/agents")
    ml1 = page.locator('tr[data-agent="ml-1"]')
    assert ml1.locator("td").all_inner_texts()[:7] == ["ml-1", "ml-engineer", "0", "2", "1", "1", "0.5"]
    assert page.locator(f'tr[data-agent="{XSS_IMAGE}"] td').first.inner_text() == XSS_IMAGE  # as text, no work
    wait_until(page, "document.getElementById('success-chart')?.chart !== undefined")
    lines = page.evaluate("document.getElementById('success-chart').chart.data.datasets"
                          ".map(d => [d.label, d.data[d.data.length - 1]])")
    assert lines == [["(all)", 0.5], ["ml-1", 0.5]]
    assert "ml-engineer" in page.get_by_role("region", name="By role").inner_text()
    assert page.get_by_role("region", name="Recent delegations").get_by_role("link", name=EVALUATE).is_visible()
    page.screenshot(path=shots / "agents.png", full_page=True)
    ml1.get_by_role("link", name="delegations").click()
    assert [r.get_by_role("link").inner_text() for r in page.locator("table.delegations tbody tr").all()] == [
        EVALUATE, RETRAIN]
    assert page.errors == []
    context.close()


# -- safety ----------------------------------------------------------------------------------------
def test_html_in_names_and_tasks_renders_as_text(browser, live_api, seeded, shots):
    context, page = signed_in(browser, live_api, seeded["tokens"]["admin"])
    for path in (f"/spaces/{seeded['space']}", f"/spaces/{seeded['space']}/delegations",
                 f"/spaces/{seeded['space']}/agents", f"/spaces/{seeded['space']}/delegations/{XSS_DELEGATION}"):
        page.goto(path)
        assert page.locator("img[src=x]").count() == 0
        assert page.locator("script:not([src]):not([type='application/json'])").count() == 0
    assert f"Check {XSS_SCRIPT} handling" in page.locator(".task").inner_text()
    outcome = page.locator(".outcome")
    assert XSS_SCRIPT in outcome.inner_text() and "a link" in outcome.inner_text()
    assert outcome.locator("a").count() == 0  # markdown-it drops javascript: links
    assert XSS_IMAGE in page.get_by_role("region", name="Delegation").inner_text()
    page.screenshot(path=shots / "delegation-html-names.png", full_page=True)
    assert page.errors == []  # no alert() ran
    context.close()


def test_another_spaces_overview_and_delegation_are_404(browser, live_api, seeded):
    context, page = signed_in(browser, live_api, seeded["tokens"]["admin"])
    for path in (f"/spaces/{seeded['other']}", f"/spaces/{seeded['other']}/delegations",
                 f"/spaces/{seeded['other']}/agents",
                 f"/spaces/{seeded['other']}/delegations/secret-work",
                 f"/spaces/{seeded['space']}/delegations/secret-work"):
        response = page.goto(path)
        assert response.status == 404, path
        assert "Work of another tenant" not in page.content()
    context.close()


def test_pages_send_a_content_security_policy_without_inline_scripts(live_api, seeded):
    response = httpx.get(f"{live_api.base_url}/sign-in")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    assert response.headers["x-content-type-options"] == "nosniff"
