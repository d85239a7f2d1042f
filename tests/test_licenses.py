"""Reading a repository's license from its own files, and storing it beside GitHub's answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.jobs.mining import mine_repository
from miners.classify import PatternSet
from miners.git import open_local
from miners.github import RepoInfo
from miners.licenses import (
    LicenseGuess,
    parse_declared_licenses,
    parse_license,
    parse_license_text,
)
from tests.conftest import RepoBuilder
from warehouse.db import connect
from warehouse.save import save_discovered

MIT = """MIT License

Copyright (c) 2019 Someone

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
"""
APACHE = """
                                 Apache License
                           Version 2.0, January 2004
                        http://www.apache.org/licenses/
"""
ISC = """Copyright (c) 2011-2024, Loic Hoguin <essen@ninenines.eu>

Permission to use, copy, modify, and/or distribute this software for any
purpose with or without fee is hereby granted, provided that the above
copyright notice and this permission notice appear in all copies.
"""
BSD3 = """Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:
* Neither the name of the copyright holder nor the names of its contributors
"""
BSD2 = """Redistribution and use in source and binary forms, with or without
modification, are permitted provided that the following conditions are met:
"""
GPL3 = """                    GNU GENERAL PUBLIC LICENSE
                       Version 3, 29 June 2007
"""
LGPL21 = """GNU LESSER GENERAL PUBLIC LICENSE
                       Version 2.1, February 1999"""


@pytest.mark.parametrize(("text", "spdx"), [
    (MIT, "MIT"), (APACHE, "Apache-2.0"), (ISC, "ISC"), (BSD3, "BSD-3-Clause"),
    (BSD2, "BSD-2-Clause"), (GPL3, "GPL-3.0"), (LGPL21, "LGPL-2.1"),
    ("Mozilla Public License Version 2.0\n==================", "MPL-2.0"),
    ("All rights reserved. Do not copy.", None), ("", None),
])
def test_license_texts(text: str, spdx: str | None) -> None:
    """The distinctive sentences of each license name it; anything else is unknown."""
    assert parse_license_text(text) == spdx


@pytest.mark.parametrize(("path", "source", "spdx"), [
    ("mix.exs", 'package: [licenses: ["Apache-2.0"], links: %{}]', "Apache-2.0"),
    ("mix.exs", 'licenses: ["Apache 2.0"]', "Apache-2.0"),
    ("mix.exs", 'licenses: ["MIT", "Apache-2.0"]', "MIT OR Apache-2.0"),
    ("mix.exs", 'licenses: ["Proprietary"]', None),
    ("mix.exs", 'licenses: ["MIT", "Proprietary"]', None),
    ("mix.exs", "defmodule X.MixProject do\nend\n", None),
    ("src/pool.app.src", '{application, pool, [{vsn, "1"}, {licenses, ["Apache 2.0"]}]}.',
     "Apache-2.0"),
    ("src/pool.app.src", "{application, pool, [{vsn, \"1\"}]}.", None),
])
def test_declared_licenses(path: str, source: str, spdx: str | None) -> None:
    """Hex package metadata is read in the spellings people use; unknown names stay unknown."""
    assert parse_declared_licenses(source, path) == spdx


def test_license_file_wins_over_package_metadata() -> None:
    """The license text itself is the stronger evidence; metadata fills in when it is absent."""
    assert parse_license({"LICENSE.md": MIT, "mix.exs": 'licenses: ["Apache-2.0"]'}) == \
        LicenseGuess("MIT", "LICENSE.md")
    assert parse_license({"LICENSE": "custom terms", "mix.exs": 'licenses: ["ISC"]'}) == \
        LicenseGuess("ISC", "mix.exs")
    assert parse_license({"README.md": MIT}) is None


def _license_row(warehouse: Path) -> tuple:
    con = connect(warehouse)
    try:
        return con.execute("SELECT license, license_source FROM repos").fetchone()
    finally:
        con.close()


def test_mining_records_the_license_and_keeps_githubs(tmp_path: Path, warehouse_path: Path,
                                                      patterns: PatternSet) -> None:
    """Mining stores the license read at HEAD, unless discovery already stored GitHub's."""
    repo = RepoBuilder(tmp_path / "project")
    repo.commit("Initial", {"LICENSE": ISC, "mix.exs": 'licenses: ["MIT"]',
                            "lib/a.ex": "defmodule A do\nend\n"})
    ref = open_local(str(repo.path), name="github.com/x/project")
    mine_repository(ref, warehouse_path, patterns, "run", max_file_bytes=1_000_000)
    assert _license_row(warehouse_path) == ("ISC", "LICENSE")

    con = connect(warehouse_path)
    try:
        info = RepoInfo(name="github.com/x/project", url="https://github.com/x/project.git",
                        language="Elixir", stars=3, license="MIT", default_branch="main",
                        archived=False, fork=False, pushed_at=None, topics=())
        save_discovered(con, [info])
    finally:
        con.close()
    repo.commit("Relicense", {"LICENSE": APACHE})
    mine_repository(ref, warehouse_path, patterns, "run2", max_file_bytes=1_000_000)
    assert _license_row(warehouse_path) == ("MIT", "github")
