"""`racemine review` in a real headless Chromium (Debian's package, driven by Selenium):
list, filter, open a fix, read before/after and the steps, correct a label, reload, find
the correction stored, export the decisions as gold and score an annotator against them."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from flows.jobs.review import (
    Decision,
    ReviewInputError,
    parse_steps,
    record_decision,
    steps_text,
)
from flows.jobs.szz import trace_origins
from flows.settings import Settings
from tests.conftest import COUNTER_FIXED, COUNTER_RACY, RepoBuilder, clean_env, mine_local, run_cli
from tests.test_szz import POOL, POOL_FIXED, POOL_RACY

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
# .ci/run installs Debian's chromium and chromium-driver and sets this: there the test must
# run; elsewhere it is skipped with the command that installs them.
REQUIRED = os.environ.get("RACEMINE_BROWSER_TESTS") == "required"


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory, patterns) -> tuple[Path, dict[str, str]]:
    """A warehouse mined from a test repository with three fixes and a non-fix, traced."""
    root = tmp_path_factory.mktemp("review")
    repo = RepoBuilder(root / "project")
    shas = {"base": repo.commit("Add counter and pool", {"lib/counter.ex": COUNTER_RACY,
                                                         "src/pool.erl": POOL})}
    shas["pool_intro"] = repo.commit("Start missing workers", {"src/pool.erl": POOL_RACY})
    shas["counter_fix"] = repo.commit("Fix race condition in Counter.bump",
                                      {"lib/counter.ex": COUNTER_FIXED})
    shas["pool_fix"] = repo.commit("Fix race condition when two callers start a worker",
                                   {"src/pool.erl": POOL_FIXED})
    shas["feature"] = repo.commit("Add deadlock detection to the pool", {
        "src/pool.erl": POOL_FIXED + "\ndetect(Name) -> whereis(Name).\n"})
    warehouse = root / "w.duckdb"
    mine_local(repo.path, warehouse, patterns, name="github.com/acme/project")
    trace_origins(Settings(warehouse=warehouse, cache_dir=root / "cache"))
    return warehouse, shas


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(reviewed: tuple[Path, dict[str, str]], tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`racemine review` as a user starts it, on a copy of the warehouse."""
    warehouse = tmp_path / "w.duckdb"
    shutil.copy(reviewed[0], warehouse)
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "flows", "review", "-w", str(warehouse),
                             "--port", str(port)], env=clean_env(
                                 tmp_path, RACEMINE_REVIEWER="ada"), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "racemine review did not start"
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}", warehouse
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture
def browser() -> Iterator[object]:
    if not (CHROMIUM and DRIVER):
        if REQUIRED:
            pytest.fail("chromium and chromedriver are required here (apt-get install "
                        "chromium chromium-driver)")
        pytest.skip("no chromium here: apt-get install chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _then_wait(d, act) -> None:
    """Do act (a click, a key) and wait until the browser has left the page it was on.

    Chrome may answer a question about an element of the page it is leaving with "Node with
    given id does not belong to the document" instead of a stale-element error
    (SeleniumHQ/selenium#15401); both say the page is gone."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    page = d.find_element(By.TAG_NAME, "html")
    act()

    def left(_) -> bool:
        try:
            page.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as exc:
            if "does not belong to the document" not in str(exc):
                raise
            return True
        return False

    WebDriverWait(d, 20).until(left)


def test_review_in_a_browser(server: tuple[str, Path], browser, reviewed, tmp_path: Path
                             ) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    url, warehouse = server
    _, shas = reviewed
    d = browser
    d.get(url + "/")
    subjects = [a.text for a in d.find_elements(By.CSS_SELECTOR, "#fixes a.open")]
    assert "Fix race condition in Counter.bump" in subjects
    assert "Add deadlock detection to the pool" not in subjects  # not a fix: filtered out

    # Filter: the non-fixes only, then back to the fixes of one repository.
    Select(d.find_element(By.NAME, "kind")).select_by_value("non_fixes")
    _then_wait(d, d.find_element(By.ID, "apply").click)
    assert [a.text for a in d.find_elements(By.CSS_SELECTOR, "#fixes a.open")] == [
        "Add deadlock detection to the pool"]
    Select(d.find_element(By.NAME, "kind")).select_by_value("fixes")
    d.find_element(By.ID, "text").send_keys("COUNTER")  # in the subject, any case
    _then_wait(d, d.find_element(By.ID, "apply").click)
    assert [a.text for a in d.find_elements(By.CSS_SELECTOR, "#fixes a.open")] == [
        "Fix race condition in Counter.bump"]
    d.find_element(By.ID, "text").clear()
    Select(d.find_element(By.NAME, "repo")).select_by_visible_text("github.com/acme/project")
    _then_wait(d, d.find_element(By.ID, "apply").click)

    # Open the counter fix: its function before and after, the changed lines marked.
    _then_wait(d, d.find_element(By.LINK_TEXT, "Fix race condition in Counter.bump").click)
    assert d.find_element(By.ID, "subject").text == "Fix race condition in Counter.bump"
    assert d.find_element(By.ID, "shown-function").text == "bump/1"
    before = d.find_element(By.ID, "before").text
    after = d.find_element(By.ID, "after").text
    assert "[{^key, n}] -> :ets.insert(:counters, {key, n + 1})" in before
    assert ":ets.update_counter(:counters, key, 1, {key, 0})" in after
    assert d.find_elements(By.CSS_SELECTOR, "#before .chg") and \
        d.find_elements(By.CSS_SELECTOR, "#after .chg")
    # The steps, each linked to the line it names.
    links = d.find_elements(By.CSS_SELECTOR, "#steps a.step-line")
    assert len(links) >= 2
    _then_wait(d, links[0].click)
    line = d.current_url.rsplit("#b", 1)[1]
    assert d.find_element(By.ID, f"b{line}").is_displayed()
    # Another changed file or function is a click away.
    assert d.find_elements(By.CSS_SELECTOR, "#changed a")

    # Correct the label with the keyboard's `c`, save, come back, reload: it is stored.
    fix_url = d.current_url.split("#")[0]
    d.find_element(By.TAG_NAME, "body").send_keys("c")
    Select(d.find_element(By.ID, "bug_type")).select_by_value("message_ordering")
    d.find_element(By.ID, "note").send_keys("the second bump reads before the first writes")
    _then_wait(d, d.find_element(By.ID, "correct").click)
    d.get(fix_url)
    d.refresh()
    assert "correct by ada" in d.find_element(By.ID, "current-decision").text
    assert "message_ordering" in d.find_element(By.ID, "current-decision").text

    # Reject the pool fix with `r` from its page.
    d.get(url + "/?review=unreviewed")
    _then_wait(d, d.find_element(By.LINK_TEXT,
                                 "Fix race condition when two callers start a worker").click)
    _then_wait(d, lambda: d.find_element(By.TAG_NAME, "body").send_keys("r"))
    con = duckdb.connect(str(warehouse), read_only=True)
    rows = dict(con.execute("SELECT sha, decision FROM reviews").fetchall())
    stored = con.execute("SELECT bug_type, note, reviewer FROM reviews WHERE sha = ?",
                         [shas["counter_fix"]]).fetchone()
    con.close()
    assert rows == {shas["counter_fix"]: "correct", shas["pool_fix"]: "reject"}
    assert stored == ("message_ordering", "the second bump reads before the first writes",
                      "ada")

    # Gold for `racemine eval`: the reviewed commits, as the reviewer decided them.
    gold = tmp_path / "gold.jsonl"
    out = run_cli("review", "-w", str(warehouse), "--export-gold", str(gold), home=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = {r["sha"]: r for r in map(json.loads, gold.read_text().splitlines())}
    assert lines[shas["counter_fix"]]["bug_type"] == "message_ordering"
    assert lines[shas["pool_fix"]]["is_concurrency_fix"] is False
    scored = run_cli("eval", str(gold), "-w", str(warehouse), "--json", home=tmp_path)
    assert scored.returncode == 0, scored.stderr
    report = json.loads(scored.stdout)
    assert report["gold"] == 2 and report["precision"]["total"] == 2


def test_reviewed_export_applies_the_corrections(reviewed, tmp_path: Path) -> None:
    """--reviewed keeps accepted and corrected records only, corrections applied."""
    warehouse = tmp_path / "w.duckdb"
    shutil.copy(reviewed[0], warehouse)
    _, shas = reviewed
    settings = Settings(warehouse=warehouse)
    record_decision(settings, Decision(repo="github.com/acme/project", sha=shas["counter_fix"],
                                       decision="correct", bug_type="message_ordering",
                                       steps="caller A | ets_read | :counters\n"
                                             "caller B | ets_write | :counters"))
    record_decision(settings, Decision(repo="github.com/acme/project", sha=shas["pool_fix"],
                                       decision="reject"))
    out = run_cli("export", str(tmp_path / "out"), "--format", "jsonl", "--reviewed",
                  "--include-unknown-license", "--split-by", "none", "-w", str(warehouse),
                  home=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(x) for x in
            (tmp_path / "out" / "jsonl" / "train.jsonl").read_text().splitlines()]
    assert {r["sha"] for r in rows} == {shas["counter_fix"]}
    assert {r["bug_type"] for r in rows} == {"message_ordering"}
    assert rows[0]["review_decision"] == "correct"
    assert [s["action"] for s in rows[0]["event_sequence"]] == ["ets_read", "ets_write"]


def test_a_bad_correction_is_one_sentence(reviewed, tmp_path: Path) -> None:
    warehouse = tmp_path / "w.duckdb"
    shutil.copy(reviewed[0], warehouse)
    with pytest.raises(ReviewInputError, match=r"step 1 .* action among"):
        parse_steps("caller | teleport | x")
    with pytest.raises(ReviewInputError, match="bug type 'races'"):
        record_decision(Settings(warehouse=warehouse), Decision(
            repo="github.com/acme/project", sha=reviewed[1]["counter_fix"], decision="correct",
            bug_type="races"))
    text = "caller A | call | Pool server | lib/pool.ex:40 | checkout/2 | asks"
    steps = parse_steps(text)
    assert (steps[0].file, steps[0].line, steps[0].function) == ("lib/pool.ex", 40,
                                                                 "checkout/2")
    assert steps_text([{**steps[0].model_dump(mode="json")}]) == text  # read back as written


def test_a_diff_without_lengths_is_shown_with_its_context() -> None:
    """`@@ -152 +152 @@` (one line each side) and a hunk with lengths, side by side."""
    from flows.web.views import panes

    diff = ("@@ -152 +152 @@\n-  old()\n+  new()\n"
            "@@ -200,2 +200,3 @@\n   keep()\n+  added()\n   last()\n")
    before, after = panes({"diff": diff}, None)
    assert [(x.number, x.text, x.changed) for x in before.lines] == [
        (152, "  old()", True), (0, "…", False), (200, "  keep()", False),
        (201, "  last()", False)]
    assert [(x.number, x.changed) for x in after.lines] == [
        (152, True), (0, False), (200, False), (201, True), (202, False)]


def test_the_list_follows_the_warehouse(reviewed, tmp_path: Path) -> None:
    """The list's snapshot is made again when another process writes to the warehouse."""
    from starlette.testclient import TestClient

    from flows.web.app import create_app

    warehouse = tmp_path / "w.duckdb"
    shutil.copy(reviewed[0], warehouse)
    settings = Settings(warehouse=warehouse)
    with TestClient(create_app(settings)) as client:
        assert "Fix race condition in Counter.bump" not in client.get("/?review=reject").text
        # Another writer (here the decision job in this process, as a second racemine would).
        record_decision(settings, Decision(repo="github.com/acme/project",
                                           sha=reviewed[1]["counter_fix"], decision="reject"))
        assert "Fix race condition in Counter.bump" in client.get("/?review=reject").text


def test_accepting_a_non_fix_keeps_it_a_non_fix(reviewed, tmp_path: Path) -> None:
    """Accept means the label is right: accepting "not a fix" records a non-fix; a
    correction to a bug type makes it a fix."""
    warehouse = tmp_path / "w.duckdb"
    shutil.copy(reviewed[0], warehouse)
    settings = Settings(warehouse=warehouse)
    repo, shas = "github.com/acme/project", reviewed[1]
    def stored() -> dict[str, bool]:
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            return dict(con.execute("SELECT sha, is_concurrency_bug FROM reviews").fetchall())
        finally:
            con.close()

    record_decision(settings, Decision(repo=repo, sha=shas["feature"], decision="accept"))
    record_decision(settings, Decision(repo=repo, sha=shas["counter_fix"], decision="accept"))
    assert stored() == {shas["feature"]: False, shas["counter_fix"]: True}
    record_decision(settings, Decision(repo=repo, sha=shas["feature"], decision="correct",
                                       bug_type="race_condition"))
    record_decision(settings, Decision(repo=repo, sha=shas["counter_fix"], decision="correct",
                                       bug_type="not_concurrency"))
    assert stored() == {shas["feature"]: True, shas["counter_fix"]: False}
    with pytest.raises(ReviewInputError, match="not in the warehouse"):
        record_decision(settings, Decision(repo=repo, sha="0" * 40, decision="accept"))


def test_a_writer_elsewhere_leaves_the_list_readable(reviewed, tmp_path: Path) -> None:
    """While another process writes the warehouse, the list shows its last copy and a fix
    page says in one sentence that the warehouse is in use."""
    from starlette.testclient import TestClient

    from flows.web.app import create_app

    warehouse = tmp_path / "w.duckdb"
    shutil.copy(reviewed[0], warehouse)
    with TestClient(create_app(Settings(warehouse=warehouse))) as client:
        first = client.get("/")
        assert first.status_code == 200
        holder = subprocess.Popen(
            [sys.executable, "-c", "import duckdb, sys, time\n"
             f"con = duckdb.connect({str(warehouse)!r})\n"
             "con.execute('CREATE TABLE IF NOT EXISTS scratch (x INTEGER)')\n"
             "con.execute('INSERT INTO scratch VALUES (1)')\n"
             "print('holding', flush=True)\ntime.sleep(60)\n"],
            stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline() == "holding\n"
            listed = client.get("/")
            assert listed.status_code == 200
            assert "Fix race condition in Counter.bump" in listed.text
            page = client.get(f"/fix/{reviewed[1]['counter_fix']}",
                              params={"repo": "github.com/acme/project"})
            assert page.status_code == 503 and "in use by another process" in page.text
        finally:
            holder.kill()
            holder.wait()
