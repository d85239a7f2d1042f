"""Which license a repository's code is under, read from its own files (offline).

GitHub's detection (from `racemine discover`) is used when a repository was discovered;
for the rest, mining reads the LICENSE/COPYING file at HEAD, then the package metadata
(`licenses:` in mix.exs, `{licenses, [...]}` in an .app.src). The text rules below are the
distinctive sentences of each license, so a reworded header or an added copyright line does
not matter; a file that matches none is "unknown", never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from miners.git import run_git

# (SPDX id, phrases that must all appear), first match wins: the more specific come first.
_TEXT_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("AGPL-3.0", ("gnu affero general public license",)),
    ("LGPL-3.0", ("gnu lesser general public license", "version 3")),
    ("LGPL-2.1", ("gnu lesser general public license", "version 2.1")),
    ("GPL-3.0", ("gnu general public license", "version 3")),
    ("GPL-2.0", ("gnu general public license", "version 2")),
    ("MPL-2.0", ("mozilla public license", "2.0")),
    ("EPL-2.0", ("eclipse public license", "2.0")),
    ("EPL-1.0", ("eclipse public license",)),
    ("Apache-2.0", ("apache license", "version 2.0")),
    ("Unlicense", ("free and unencumbered software released into the public domain",)),
    ("ISC", ("permission to use, copy, modify, and/or distribute this software for any "
             "purpose with or without fee is hereby granted, provided that the above",)),
    ("ISC", ("permission to use, copy, modify, and distribute this software for any purpose "
             "with or without fee is hereby granted, provided that the above",)),
    ("0BSD", ("permission to use, copy, modify, and/or distribute this software for any "
              "purpose with or without fee is hereby granted.",)),
    ("MIT", ("permission is hereby granted, free of charge",)),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms",
                      "neither the name")),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms",
                      "may not be used to endorse or promote")),
    ("BSD-2-Clause", ("redistribution and use in source and binary forms",)),
    ("CC0-1.0", ("cc0 1.0 universal",)),
)

# How package metadata spells licenses, lower-cased and without spaces, dashes or dots.
_ALIASES = {
    "apache2": "Apache-2.0", "apache20": "Apache-2.0", "apachelicense20": "Apache-2.0",
    "apachelicenseversion20": "Apache-2.0", "asl2": "Apache-2.0", "asl20": "Apache-2.0",
    "mit": "MIT", "mitlicense": "MIT", "expat": "MIT", "isc": "ISC", "0bsd": "0BSD",
    "bsd": "BSD-3-Clause", "bsd3": "BSD-3-Clause", "bsd3clause": "BSD-3-Clause",
    "newbsd": "BSD-3-Clause", "bsd2": "BSD-2-Clause", "bsd2clause": "BSD-2-Clause",
    "mpl2": "MPL-2.0", "mpl20": "MPL-2.0", "epl": "EPL-1.0", "epl10": "EPL-1.0",
    "epl20": "EPL-2.0", "lgpl": "LGPL-2.1", "lgpl21": "LGPL-2.1", "lgpl3": "LGPL-3.0",
    "lgpl30": "LGPL-3.0", "gpl2": "GPL-2.0", "gpl20": "GPL-2.0", "gpl3": "GPL-3.0",
    "gpl30": "GPL-3.0", "agpl3": "AGPL-3.0", "agpl30": "AGPL-3.0", "unlicense": "Unlicense",
    "cc010": "CC0-1.0", "cc0": "CC0-1.0", "wtfpl": "WTFPL", "zlib": "Zlib",
    "boost": "BSL-1.0", "bsl10": "BSL-1.0", "erlangpubliclicense": "ErlPL-1.1",
    "erlpl11": "ErlPL-1.1",
}
_MIX_LICENSES = re.compile(r"licenses:\s*\[([^\]]*)\]")
_APP_LICENSES = re.compile(r"\{\s*licenses\s*,\s*\[([^\]]*)\]\s*\}")
_QUOTED = re.compile(r"\"([^\"\n]{1,80})\"")
_LICENSE_FILE = re.compile(r"^(?:license|licence|copying|unlicense)(?:[-_.][\w.-]*)?$", re.I)
_MAX_BYTES = 200_000


@dataclass(frozen=True)
class LicenseGuess:
    """An SPDX expression ("MIT", "Apache-2.0 OR MIT") and the file it was read from."""

    spdx: str
    source: str


def parse_license_text(text: str) -> str | None:
    """The SPDX id of a license file's text, or None when no rule matches."""
    flat = " ".join(text[:_MAX_BYTES].lower().split())
    for spdx, phrases in _TEXT_RULES:
        if all(p in flat for p in phrases):
            return spdx
    return None


def parse_declared_licenses(source: str, path: str) -> str | None:
    """The SPDX expression declared in mix.exs or an .app.src, or None when absent/unknown."""
    pattern = _APP_LICENSES if path.endswith(".app.src") else _MIX_LICENSES
    found = pattern.search(source[:_MAX_BYTES])
    if not found:
        return None
    ids = []
    for name in _QUOTED.findall(found.group(1)):
        spdx = _ALIASES.get(re.sub(r"[\s\-_.]", "", name.lower()))
        if spdx is None:
            return None  # one unrecognised name makes the whole declaration unknown
        if spdx not in ids:
            ids.append(spdx)
    return " OR ".join(ids) or None


def parse_license(files: Mapping[str, str]) -> LicenseGuess | None:
    """Best license guess from a repository's top-level files (path -> text)."""
    for path in sorted(files, key=lambda p: (p.count("/"), len(p), p)):
        if _LICENSE_FILE.match(path.rsplit("/", 1)[-1]):
            spdx = parse_license_text(files[path])
            if spdx:
                return LicenseGuess(spdx, path)
    for path in sorted(files):
        if path == "mix.exs" or path.endswith(".app.src"):
            spdx = parse_declared_licenses(files[path], path)
            if spdx:
                return LicenseGuess(spdx, path)
    return None


def fetch_license(git_dir: str, rev: str) -> LicenseGuess | None:
    """Read the license files and package metadata at rev and guess its license."""
    listing = run_git(git_dir, ["ls-tree", "--name-only", rev], what=git_dir).splitlines()
    if "src" in listing:
        listing += run_git(git_dir, ["ls-tree", "--name-only", rev, "src/"],
                           what=git_dir).splitlines()
    wanted = [p for p in listing
              if _LICENSE_FILE.match(p) or p == "mix.exs" or p.endswith(".app.src")]
    files = {}
    for path in wanted[:20]:
        files[path] = run_git(git_dir, ["cat-file", "blob", f"{rev}:{path}"], what=git_dir)
    return parse_license(files)
