"""Ask in a real browser, against a real `loglake serve` whose language model is a local OpenAI-compatible
server answering from a script: the SQL and its estimated scan shown before anything runs, Run showing
the rows /query answers, follow-ups in one conversation, Open in SQL, a rule drafted and written on
confirmation, a new conversation; the model's and the budget's errors shown in place with what to do;
axe-core's checks and screenshots in both themes."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from axe_playwright_python.sync_playwright import Axe

from loglake.ask.rule_draft import NO_THRESHOLD
from loglake.rules.loader import load_rules
from tests.ask.model_server import STALL, Failure, ModelServer, Spent, running_model_server, sql_reply
from tests.ui.conftest import Loglake, no_horizontal_scroll, screenshot, serving, sign_in
from tests.ui.test_accessibility import WIDTHS, violations

pytestmark = pytest.mark.e2e

ERRORS_BY_SERVICE = "SELECT service, count(*) AS errors FROM logs WHERE severity = 'error' GROUP BY service"
ONLY_API = "SELECT count(*) AS errors FROM logs WHERE severity = 'error' AND service = 'api'"


def llm_args(model: ModelServer) -> tuple[str, ...]:
    return ("--llm-provider", "openai", "--llm-endpoint", model.url + "/v1", "--llm-model", "test-model")


@pytest.fixture(scope="module")
def model() -> Iterator[ModelServer]:
    with running_model_server() as server:
        yield server


@pytest.fixture(scope="module")
def asking(tmp_path_factory: pytest.TempPathFactory, model: ModelServer) -> Iterator[Loglake]:
    folder = tmp_path_factory.mktemp("ask")
    with serving(folder, *llm_args(model)) as lake:
        yield lake


def queries_run(lake: Loglake) -> int:
    with lake.client() as c:
        metrics = c.get("/metrics").text
    return sum(int(float(n)) for n in re.findall(r"^loglake_queries_total\{[^}]*\} (\S+)$", metrics, re.M))


def ask(page, question: str) -> None:
    turns = page.locator(".turn").count()
    page.get_by_label("Question").fill(question)
    page.get_by_label("Question").press("Enter")
    page.locator(".turn").nth(turns).wait_for()


def test_a_question_shows_its_sql_and_scan_before_running_then_runs_follows_up_and_becomes_a_rule(page, asking, model):
    sign_in(page, asking)
    page.get_by_role("link", name="Ask").click()
    page.wait_for_url("**/ui/ask")
    ran_before = queries_run(asking)
    model.say(sql_reply(ERRORS_BY_SERVICE, "Counts the error records of each service."))
    ask(page, "how many errors per service?")
    turn = page.locator(".turn").first
    assert turn.locator(".explanation").inner_text() == "Counts the error records of each service."
    shown_sql = turn.locator(".sql-code").inner_text()
    assert "severity = 'error'" in shown_sql and shown_sql.rstrip().endswith("LIMIT 10000")  # formatted, capped
    # The span of the lake's records it reads, apart from the query's range (it names none). The fixture's records
    # span the last 50 minutes: in the first hour of a UTC day they are in two day partitions, a file each.
    assert re.fullmatch(
        r"(?P<n>[12]) lake files? of (?P=n), .+ of .+ \((?P=n) row groups?, at most 120 rows, records from .+ → .+\)",
        turn.locator("dd").nth(2).inner_text(),
    )
    assert turn.locator("dd").nth(1).inner_text() == "all time (the query names no time)"
    assert turn.locator("dd").first.inner_text() == "logs"
    assert "no time filter" in turn.locator(".warnings").inner_text()
    assert queries_run(asking) == ran_before  # shown, not run
    assert model.seen[-1].body["messages"][-1]["content"] == "how many errors per service?"

    turn.get_by_role("button", name="Run").click()
    turn.locator(".grid tbody tr").first.wait_for()
    with asking.client() as c:
        expected = c.post("/query", json={"sql": shown_sql}).json()
    assert expected["rows"] == [["api", 6]]  # the fixture's api errors, every 20th of 120
    assert turn.locator(".grid tbody tr").all_inner_texts() == ["api\t6"]
    assert turn.locator(".stats").inner_text().startswith("1 row ·")
    assert queries_run(asking) == ran_before + 2  # the page's run and this test's
    screenshot(page, "ask")

    # a follow-up carries the conversation to the model
    model.say(sql_reply(ONLY_API, "Counts the api service's errors."))
    ask(page, "only for the api service")
    texts = model.seen[-1].texts
    assert texts[0] == "how many errors per service?" and texts[-1] == "only for the api service"
    assert page.get_by_role("button", name="Make this a rule").count() == 1  # drafted from the last answer only

    # the SQL page gets the answer's SQL; coming back finds the conversation
    last = page.locator(".turn").nth(1)
    follow_sql = last.locator(".sql-code").inner_text()
    last.get_by_role("link", name="Open in SQL").click()
    page.wait_for_url("**/ui/sql?sql=**")
    assert page.get_by_label("SQL query").input_value() == follow_sql
    page.go_back()
    page.locator(".turn").nth(1).wait_for()
    assert page.locator(".turn .question").all_inner_texts() == [
        "You asked: how many errors per service?",
        "You asked: only for the api service",
    ]

    # a rule drafted from the last answer, written when confirmed
    page.get_by_role("button", name="Make this a rule").click()
    drafted = page.get_by_label("The drafted rule")
    drafted.wait_for()
    assert "service = 'api'" in drafted.inner_text() and "LIMIT" not in drafted.inner_text()
    assert page.locator(".rule-output .warnings").inner_text() == NO_THRESHOLD  # count(*) alone: a row each run
    rules_dir = asking.server.data_dir / "rules"
    assert not rules_dir.exists()  # only a draft so far
    page.keyboard.press("Escape")  # discards the draft, as its button does
    drafted.wait_for(state="detached")
    page.get_by_role("button", name="Make this a rule").click()
    drafted.wait_for()
    heading = page.get_by_role("heading", name=re.compile(r"^Drafted rule ask-\w+\.yml$"))
    file_name = heading.inner_text().removeprefix("Drafted rule ")
    page.get_by_role("button", name=f"Write {file_name} to the rules folder").click()
    written = page.locator(".rule-output p", has_text="The rule is written to")
    written.wait_for()
    # the confirmation drafts again, with the draft's rule id: the file written is the one shown
    (path,) = rules_dir.iterdir()
    assert path.name == file_name
    assert f"written to {path};" in written.inner_text()
    loaded = load_rules(rules_dir)
    assert loaded.problems == [] and len(loaded.rules) == 1
    assert "service = 'api'" in path.read_text() and loaded.rules[0].kind == "sql"

    # a new conversation sends the model no history
    page.get_by_role("button", name="New conversation").click()
    assert page.locator(".turn").count() == 0
    model.say(sql_reply(ONLY_API))
    ask(page, "errors of the api service")
    assert model.seen[-1].texts == ["errors of the api service"]


def test_a_range_computed_from_now_is_shown_with_the_warning_that_it_prunes_nothing(page, asking, model):
    """It was shown as "all time (the query names no time)"."""
    sign_in(page, asking)
    page.goto(asking.url + "/ui/ask")
    model.say(sql_reply("SELECT count(*) AS n FROM logs WHERE timestamp >= now() - INTERVAL 1 HOUR LIMIT 10"))
    ask(page, "records in the last hour")
    turn = page.locator(".turn").last
    assert re.fullmatch(
        r".+ → now local \(relative to now\(\): the range moves with each run\)", turn.locator("dd").nth(1).inner_text()
    )
    assert "computed from now(), which prunes no lake files" in turn.locator(".warnings").inner_text()
    # in UTC, chosen in the header: said once, not "… UTC → now local"
    page.locator("#tz").click()
    model.say(sql_reply("SELECT count(*) AS n FROM logs WHERE timestamp >= now() - INTERVAL 1 HOUR LIMIT 10"))
    ask(page, "records in the last hour, in UTC")
    said = page.locator(".turn").last.locator("dd").nth(1).inner_text()
    assert re.fullmatch(r".+ UTC → now \(relative to now\(\): the range moves with each run\)", said), said


def test_an_answer_that_reads_no_table_says_so(page, asking, model):
    """Its "Reads" was empty (SELECT 1; the SQL trial)."""
    sign_in(page, asking)
    page.goto(asking.url + "/ui/ask")
    model.say(sql_reply("SELECT 1 AS one"))
    ask(page, "one?")
    assert page.locator(".turn").last.locator("dd").first.inner_text() == "no table"


def test_the_ask_page_is_accessible_in_both_themes_and_fits_a_phone(page, asking, model):
    sign_in(page, asking)
    page.goto(asking.url + "/ui/ask")
    model.say(sql_reply(ERRORS_BY_SERVICE))
    ask(page, "errors per service")
    page.get_by_role("button", name="Make this a rule").click()
    page.get_by_label("The drafted rule").wait_for()
    page.get_by_role("button", name="Run").click()
    page.locator(".grid tbody tr").first.wait_for()
    axe = Axe()
    problems = {}
    for theme in ("light", "dark"):
        page.emulate_media(color_scheme=theme)
        problems[theme] = violations(axe, page)
    assert problems == {"light": [], "dark": []}
    page.set_viewport_size(WIDTHS["phone"])
    assert no_horizontal_scroll(page)
    screenshot(page, "ask-phone")


def test_the_model_s_failures_and_the_spent_budget_are_shown_in_place_with_what_to_do(page, model, tmp_path):
    args = (*llm_args(model), "--llm-timeout-seconds", "1", "--llm-daily-tokens", "200000")
    with serving(tmp_path, *args) as lake:
        sign_in(page, lake)
        page.goto(lake.url + "/ui/ask")
        question = page.get_by_label("Question")
        error = page.locator(".ask-status .error-box")

        model.say(Failure(500, '{"error": "boom"}'))
        question.fill("anything")
        question.press("Enter")
        error.wait_for()
        assert error.locator("strong").inner_text() == "Error 502"
        assert "The model answered with an error: ask again" in error.inner_text()

        model.say(STALL)
        error.get_by_role("button", name="Retry").click()
        page.get_by_text("did not answer within 1 s").wait_for()
        assert error.locator("strong").inner_text() == "Error 503"
        assert "ask again in 5 seconds" in error.inner_text()  # the server's Retry-After
        screenshot(page, "ask-error")

        model.say(Spent(sql_reply(ONLY_API), 300_000))  # answered: its tokens spend the day's budget
        error.get_by_role("button", name="Retry").click()
        page.locator(".turn").first.wait_for()
        assert question.input_value() == ""

        question.fill("and yesterday?")
        question.press("Enter")
        page.get_by_text("token budget").first.wait_for()
        assert error.locator("strong").inner_text() == "Error 429"
        assert re.search(r"renews in \d+ (hours?|minutes?|seconds?)\.", error.inner_text())
        assert error.get_by_role("button", name="Retry").count() == 0  # nothing to retry until tomorrow
        assert page.locator(".turn").count() == 1


def test_a_question_typed_but_not_asked_is_still_there_after_visiting_another_page(page, asking, model):
    # (the conversation survived leaving the page, the question being written did not)
    sign_in(page, asking)
    page.get_by_role("link", name="Ask").click()
    page.get_by_label("Question").fill("which services logged errors after")  # half written
    page.get_by_role("link", name="Explore").click()
    page.wait_for_url("**/ui/explore*")
    page.get_by_role("link", name="Ask").click()
    assert page.get_by_label("Question").input_value() == "which services logged errors after"
    model.say(sql_reply(ERRORS_BY_SERVICE, "Counts the error records of each service."))
    ask(page, "which services logged errors?")
    page.get_by_role("link", name="SQL", exact=True).click()
    page.get_by_role("link", name="Ask").click()
    assert page.get_by_label("Question").input_value() == ""  # asked: no longer a draft


def test_leaving_the_page_stops_an_answers_run(page, asking, model):
    """A UI trial: Run's query went on when the page was left (a query over the lake, run to its end on the server
    for a page no longer shown), where the other pages give up their requests."""
    sign_in(page, asking)
    page.goto(asking.url + "/ui/ask")
    model.say(sql_reply(ERRORS_BY_SERVICE))
    ask(page, "errors per service?")
    held = []  # the run, held as a slow server holds it
    page.route("**/query", lambda route: held.append(route))
    given_up = []
    page.on("requestfailed", lambda request: given_up.append(request.url))
    page.locator(".turn").first.get_by_role("button", name="Run").click()
    while not held:  # (routes are handled while Playwright waits)
        page.wait_for_timeout(50)
    page.get_by_role("link", name="Rules").click()
    page.get_by_role("heading", name="Rules").wait_for()
    for _ in range(100):
        if given_up:
            break
        page.wait_for_timeout(50)
    assert given_up == [asking.url + "/query"]


def test_an_answer_that_comes_after_the_page_was_left_is_shown_without_the_draft_typed_since(page, asking, model):
    """A UI trial: an answer that came after the page was left was added to the conversation as the page left held
    it; the Ask page opened again meanwhile did not show it until a reload, and lost the question typed there since
    (the answer's empty draft replaced it)."""
    held = []  # the question, held as a slow model holds it
    page.route("**/ask", lambda route: held.append(route) if route.request.method == "POST" else route.continue_())
    sign_in(page, asking)
    page.goto(asking.url + "/ui/ask")
    model.say(sql_reply(ERRORS_BY_SERVICE, "Counts the error records of each service."))
    page.get_by_label("Question").fill("how many errors per service?")
    page.get_by_label("Question").press("Enter")
    while not held:  # (routes are handled while Playwright waits)
        page.wait_for_timeout(50)
    page.get_by_role("link", name="Rules").click()
    page.get_by_role("heading", name="Rules").wait_for()
    page.get_by_role("link", name="Ask").click()
    # still on its way: said so, and no second question meanwhile
    page.get_by_text("Asking test-model…").wait_for()
    assert page.get_by_role("button", name="Ask", exact=True).is_disabled()
    page.get_by_label("Question").fill("and which service logged the most?")
    held[0].continue_()
    page.locator(".turn").first.wait_for()
    assert page.locator(".turn .question").all_inner_texts() == ["You asked: how many errors per service?"]
    assert page.get_by_label("Question").input_value() == "and which service logged the most?"
    assert page.get_by_role("button", name="Ask", exact=True).is_enabled()
    page.reload()
    page.locator(".turn").first.wait_for()
    assert page.locator(".turn").count() == 1
    assert page.get_by_label("Question").input_value() == "and which service logged the most?"


def test_a_rule_draft_discarded_by_keyboard_gives_the_focus_back_to_its_button(page, asking, model):
    """A UI trial, by keyboard: Escape (or Discard) removed the draft the focus was in, and left it on the page's body:
    the next Tab started again from the top of the page."""
    sign_in(page, asking)
    page.goto(asking.url + "/ui/ask")
    model.say(sql_reply(ONLY_API, "Counts the api service's errors."))
    ask(page, "errors of the api service")
    make = page.get_by_role("button", name="Make this a rule")
    drafted = page.get_by_label("The drafted rule")
    for place, key in ((drafted, "Escape"), (page.get_by_role("button", name="Discard"), "Enter")):
        make.focus()
        page.keyboard.press("Enter")
        place.wait_for()
        place.focus()
        page.keyboard.press(key)
        drafted.wait_for(state="detached")
        assert make.evaluate("button => document.activeElement === button"), key
