"""A planted GitHub token and LLM key, through a whole pipeline run: used where they belong
(the two APIs' Authorization headers) and found nowhere else — not in the output, the logs,
the warehouse, Prefect's database and results, the mirror cache or the exports."""

from __future__ import annotations

from pathlib import Path

import duckdb

from tests.conftest import RepoBuilder, run_cli
from tests.github_server import FakeGitHub, make_repos
from tests.llm_server import FakeLLM
from tests.prefect_server import PrefectServer

TOKEN = "ghp_PLANTEDtoken0123456789abcdefABCDEF"
KEY = "sk-PLANTED-key-0123456789abcdefABCDEF"


def _tables_as_text(warehouse: Path) -> str:
    """Every value of every table, as text (the file itself may compress strings)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
        ).fetchall()]
        return "\n".join(str(con.execute(f"SELECT * FROM {t}").fetchall()) for t in tables)
    finally:
        con.close()


def test_planted_secrets_stay_out_of_everything(history: tuple[RepoBuilder, dict[str, str]],
                                                tmp_path: Path,
                                                prefect_server: PrefectServer) -> None:
    """discover → mine → annotate → export with both secrets set, as a tracked run on a real
    Prefect server, leaks neither."""
    repo, _ = history
    home = tmp_path / "home"
    home.mkdir()
    listing = home / "repos.txt"
    listing.write_text("owner1/repo1\n")
    warehouse, exports = home / "w.duckdb", home / "exports"
    with FakeGitHub(make_repos(3)) as gh, FakeLLM() as llm:
        run = run_cli("pipeline", "--from", str(listing), "--repo", str(repo.path),
                      "--warehouse", str(warehouse), "--export-dir", str(exports),
                      "--include-unknown-license", "--verbose", home=home,
                      extra={"RACEMINE_GITHUB_API_URL": gh.url, "RACEMINE_GITHUB_TOKEN": TOKEN,
                             "RACEMINE_LLM_BASE_URL": llm.base_url, "RACEMINE_LLM_API_KEY": KEY,
                             "RACEMINE_LLM_MODEL": "gpt-4o-mini", **prefect_server.env()})
        assert run.returncode == 0, run.stderr
        assert f"Bearer {TOKEN}" in gh.authorizations  # the secrets were really used
        assert llm.headers and all(h["authorization"] == f"Bearer {KEY}" for h in llm.headers)
    con = duckdb.connect(str(warehouse), read_only=True)
    assert con.execute("SELECT count(*) FROM annotations WHERE annotator LIKE 'llm/%'"
                       ).fetchone()[0] > 0
    con.close()
    assert list(exports.rglob("*.parquet"))
    assert any(r["state_type"] == "COMPLETED"  # it ran as a tracked flow
               for r in prefect_server.flow_runs("pipeline", warehouse))

    texts = {"stdout": run.stdout, "stderr": run.stderr, "tables": _tables_as_text(warehouse)}
    files = [p for root in (tmp_path, prefect_server.home) for p in root.rglob("*")
             if p.is_file()]
    for secret in (TOKEN, KEY):
        for where, text in texts.items():
            assert secret not in text, where
        for path in files:  # warehouse, Prefect's database and logs, cache, exports
            data = path.read_bytes()
            assert secret.encode() not in data and secret.encode("utf-16-le") not in data, path
