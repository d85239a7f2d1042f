"""`racemine annotate` against servers that behave as real ones do, at the default
concurrency (8), on a mined repository: one commit's trouble stays that commit's, and only
what is global stops the run, in one sentence, with nothing marked failed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from flows.cli import app
from miners.classify import PatternSet
from tests.conftest import RepoBuilder, clean_env, mine_local
from tests.llm_server import FakeLLM, Reply, default_script, naive_label

runner = CliRunner()
Script = Callable[[dict[str, Any], int], Reply]


def annotate(warehouse: Path, llm: FakeLLM, *args: str, model: str = "test-model",
             **env: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, ["annotate", "-w", str(warehouse), *args],
                         env={"RACEMINE_LLM_BASE_URL": llm.base_url, "RACEMINE_LLM_MODEL": model,
                              "RACEMINE_LLM_API_KEY": "sk-test", **env})


def labels(warehouse: Path) -> list[tuple]:
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        return con.execute("SELECT sha, status, failure, reasks, extra_fields FROM annotations "
                           "WHERE annotator LIKE 'llm/%' ORDER BY sha").fetchall()
    finally:
        con.close()


def label_json(request: dict[str, Any]) -> str:
    return json.dumps(naive_label(request))


def _user(request: dict[str, Any]) -> str:
    return request["messages"][1]["content"]


def _extra_keys(request: dict[str, Any], call: int) -> Reply:
    return Reply(content=json.dumps({**naive_label(request), "critique": "looks right",
                                     "notes": ["one", "two"]}))


def _think_with_braces(request: dict[str, Any], call: int) -> Reply:
    return Reply(content="<think>The worker returns {:ok, pid} and the map %{a: 1} is read by "
                         "two processes... {not json</think>\n" + label_json(request))


def _no_json_schema(request: dict[str, Any], call: int) -> Reply:
    if request.get("response_format", {}).get("type") == "json_schema":
        return Reply(status=400, content="response_format json_schema is not supported")
    return Reply(content="Sure:\n```json\n" + label_json(request) + "\n```", delay=0.05)


def _too_big(request: dict[str, Any]) -> bool:
    """Three of the eight commits send more than this much code and message."""
    return len(_user(request)) > 1_000


def _context_length(request: dict[str, Any], call: int) -> Reply:
    if _too_big(request):
        return Reply(status=400, content="This model's maximum context length is 1500 tokens. "
                     "However, your messages resulted in 2100 tokens. Please reduce the length "
                     "of the messages.")
    return default_script(request, call)


def _payload_too_large(request: dict[str, Any], call: int) -> Reply:
    if _too_big(request):
        return Reply(status=413, content="Request Entity Too Large")
    return default_script(request, call)


def _unprocessable(request: dict[str, Any], call: int) -> Reply:
    if "the pool calls itself" in _user(request):  # one commit only
        return Reply(status=422, content="Input should be a valid string")
    return default_script(request, call)


def _reasoning_cap(request: dict[str, Any], call: int) -> Reply:
    cap = request.get("max_completion_tokens") or request.get("max_tokens") or 0
    if cap < 4_000:  # spends every output token thinking, answers nothing
        return Reply(null_content=True, finish_reason="length",
                     usage={"prompt_tokens": 900, "completion_tokens": cap,
                            "completion_tokens_details": {"reasoning_tokens": cap}})
    return Reply(content=label_json(request),
                 usage={"prompt_tokens": 900, "completion_tokens": 3_000,
                        "prompt_tokens_details": {"cached_tokens": 600},
                        "completion_tokens_details": {"reasoning_tokens": 2_800}})


def _rejects_max_tokens(request: dict[str, Any], call: int) -> Reply:
    if "max_tokens" in request or "temperature" in request:
        return Reply(status=400, content="Unsupported parameter: 'max_tokens' is not supported "
                     "with this model. Use 'max_completion_tokens' instead.")
    return default_script(request, call)


# (script, environment, labeled, failed): every mode but the last two labels all 8 commits
MODES: dict[str, tuple[Script, dict[str, str], int, int]] = {
    "extra keys": (_extra_keys, {}, 8, 0),
    "think block with braces": (_think_with_braces, {}, 8, 0),
    "400 on json_schema": (_no_json_schema, {}, 8, 0),
    "400 maximum context length": (_context_length, {"RACEMINE_LLM_MAX_INPUT_CHARS": "2000"},
                                   8, 0),
    "413": (_payload_too_large, {"RACEMINE_LLM_MAX_INPUT_CHARS": "2000"}, 8, 0),
    "reasoning model out of output tokens": (_reasoning_cap, {"RACEMINE_LLM_REASONING": "true",
                                                              "RACEMINE_LLM_MAX_OUTPUT_TOKENS":
                                                              "2000"}, 8, 0),
    "unknown model rejecting max_tokens": (_rejects_max_tokens, {}, 8, 0),
    "422 on one commit": (_unprocessable, {}, 7, 1),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_awkward_server_modes(mode: str, mined: Path) -> None:
    """Each mode labels every commit it allows at concurrency 8 and exits 0; a second run
    sends no request for a labeled commit."""
    script, env, labeled, failed = MODES[mode]
    with FakeLLM(script) as llm:
        out = annotate(mined, llm, **env)
        assert out.exit_code == 0, out.output
        assert f"{labeled} labeled · {failed} failed" in out.output
        sent = len(llm.requests)
        again = annotate(mined, llm, **env)
        assert again.exit_code == 0, again.output
        assert len(llm.requests) == sent  # failed commits wait for --retry-failed
    rows = labels(mined)
    assert sum(r[1] == "ok" for r in rows) == labeled and len(rows) == labeled + failed


def test_extra_keys_are_kept_and_replies_read_once(mined: Path) -> None:
    """Keys the schema does not name are stored, not fatal: one request per commit."""
    with FakeLLM(_extra_keys) as llm:
        assert annotate(mined, llm).exit_code == 0
        assert len(llm.requests) == 8
    assert all(json.loads(r[4]) == {"critique": "looks right", "notes": ["one", "two"]}
               for r in labels(mined))


def test_format_is_lowered_once_per_level(mined: Path) -> None:
    """Eight workers meeting the same 400 lower the format one level at a time, never to
    plain text while JSON mode works."""
    with FakeLLM(_no_json_schema) as llm:
        assert annotate(mined, llm).exit_code == 0
        kinds = [r.get("response_format", {}).get("type") for r in llm.requests]
    assert kinds.count("json_object") == 8 and None not in kinds


def test_too_long_is_asked_again_with_less(mined: Path) -> None:
    """A commit whose request the context cannot hold is asked once more with a third of the
    input, and the label says what was left out."""
    with FakeLLM(_context_length) as llm:
        assert annotate(mined, llm, RACEMINE_LLM_MAX_INPUT_CHARS="2000").exit_code == 0
    con = duckdb.connect(str(mined), read_only=True)
    notes = con.execute("SELECT count(*) FROM annotations WHERE annotator LIKE 'llm/%' AND "
                        "input_note IS NOT NULL").fetchone()[0]
    con.close()
    assert notes == 3


def test_reasoning_models_get_their_parameters(mined: Path) -> None:
    """o-series and gpt-5 models get max_completion_tokens and no temperature; reasoning and
    cached tokens are stored and cached input is priced lower."""
    with FakeLLM(_reasoning_cap) as llm:
        out = annotate(mined, llm, "--limit", "2", model="o4-mini")
        assert out.exit_code == 0, out.output
        first = llm.requests[0]
    assert "temperature" not in first and "max_tokens" not in first
    assert first["max_completion_tokens"] >= 4_000  # 16,384 by default for reasoning models
    con = duckdb.connect(str(mined), read_only=True)
    reasoning, cached, usd = con.execute(
        "SELECT sum(reasoning_tokens), sum(cached_tokens), sum(cost_usd) FROM llm_calls"
    ).fetchone()
    con.close()
    assert (reasoning, cached) == (2 * 2_800, 2 * 600)
    # o4-mini: $1.10 per million input, $0.275 cached, $4.40 output
    assert usd == pytest.approx(2 * (300 * 1.10 + 600 * 0.275 + 3_000 * 4.40) / 1e6)


def test_streaming_only_server_stops_the_run(mined: Path) -> None:
    """A server that only streams stops the run with one sentence; nothing is marked failed."""
    with FakeLLM(lambda r, c: Reply(content=label_json(r), stream=True)) as llm:
        out = annotate(mined, llm)
    assert out.exit_code == 1 and "stream" in out.output and "Traceback" not in out.output
    assert labels(mined) == []


def test_unreachable_host_stops_at_once(mined: Path) -> None:
    """A refused connection is not retried for minutes: one sentence naming the setting."""
    with FakeLLM() as llm:
        url = llm.base_url
    started = time.monotonic()
    out = runner.invoke(app, ["annotate", "-w", str(mined)],
                        env={"RACEMINE_LLM_BASE_URL": url, "RACEMINE_LLM_MODEL": "m"})
    assert out.exit_code == 1 and "RACEMINE_LLM_BASE_URL" in out.output
    assert time.monotonic() - started < 10 and labels(mined) == []


def test_no_model_configured_sends_nothing(mined: Path) -> None:
    """With no model and no key, annotate says what to set and sends no request."""
    out = runner.invoke(app, ["annotate", "-w", str(mined)],
                        env={"RACEMINE_LLM_MODEL": "", "RACEMINE_LLM_API_KEY": "",
                             "OPENAI_API_KEY": "", "RACEMINE_LLM_BASE_URL": ""})
    assert out.exit_code == 1 and "RACEMINE_LLM_MODEL" in out.output
    assert labels(mined) == []


def test_first_commits_failing_alike_stop_the_run(tmp_path: Path, patterns: PatternSet
                                                  ) -> None:
    """When the first ten commits all fail the same way, the run stops with one sentence and
    marks none of them failed."""
    repo = RepoBuilder(tmp_path / "many")
    for i in range(30):
        repo.commit(f"Fix race condition number {i}",
                    {"lib/a.ex": f"defmodule A do\n  def a, do: {i}\nend\n"})
    warehouse = tmp_path / "w.duckdb"
    mine_local(repo.path, warehouse, patterns)
    with FakeLLM(lambda r, c: Reply(content="I would rather not.")) as llm:
        out = annotate(warehouse, llm)
        sent = len(llm.requests)
    assert out.exit_code == 1 and "first 10 commits all failed" in out.output
    assert labels(warehouse) == [] and sent < 30 * 3  # the rest were never asked


def test_batch_run_killed_then_collected_pays_once(mined: Path, tmp_path: Path) -> None:
    """A --batch run killed while the server creates its batch is resumed by a new process:
    the batch is found by its input file, collected, and every commit is labeled once, the
    server answering exactly one request per commit."""
    with FakeLLM(batch_create_delay=30, batch_seconds=0.5) as llm:
        env = clean_env(tmp_path, RACEMINE_LLM_BASE_URL=llm.base_url,
                        RACEMINE_LLM_MODEL="gpt-4.1-mini", RACEMINE_LLM_API_KEY="sk-test")
        submit = subprocess.Popen([sys.executable, "-m", "flows", "annotate", "--batch",
                                   "-w", str(mined)], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not llm.batches and time.monotonic() < deadline:
            time.sleep(0.1)
        submit.kill()  # the server has the batch; the client never saw its id
        submit.wait()
        assert len(llm.batches) == 1
        for _ in range(20):  # a new process collects once the server is done
            out = subprocess.run([sys.executable, "-m", "flows", "annotate", "-w",
                                  str(mined)], env=env, capture_output=True, text=True,
                                 timeout=120)
            assert out.returncode == 0, out.stderr
            if "still working" not in out.stdout:
                break
            time.sleep(0.3)
        assert "8 labeled" in out.stdout, out.stdout
        assert len(llm.requests) == 8 and len(llm.batches) == 1
    rows = labels(mined)
    assert len(rows) == 8 and all(r[1] == "ok" for r in rows)
    con = duckdb.connect(str(mined), read_only=True)
    batches = con.execute("SELECT status, batch_id FROM llm_batches").fetchall()
    kinds = con.execute("SELECT DISTINCT kind FROM llm_calls").fetchall()
    usd = con.execute("SELECT sum(cost_usd) FROM llm_calls").fetchone()[0]
    con.close()
    assert batches == [("collected", "batch_0")] and kinds == [("batch",)]
    assert usd == pytest.approx(8 * (100 * 0.40 + 20 * 1.60) / 1e6 / 2)  # half price


def test_batch_answers_that_do_not_validate_are_asked_again(mined: Path) -> None:
    """Collecting a batch keeps what validates; a commit whose batch answer does not is asked
    again one by one in the same run."""
    def script(request: dict[str, Any], call: int) -> Reply:
        if call == 0:  # the batch's first line
            return Reply(content="no JSON here")
        return default_script(request, call)

    with FakeLLM(script, batch_seconds=0) as llm:
        first = annotate(mined, llm, "--batch")
        assert first.exit_code == 0 and "8 commits submitted as a batch" in first.output
        second = annotate(mined, llm)
        assert second.exit_code == 0, second.output
        assert len(llm.requests) == 9  # 8 in the batch, 1 asked again
        assert len(llm.batches) == 1  # one by one, not in a second batch
    assert sum(r[1] == "ok" for r in labels(mined)) == 8
