"""Before/after file pairs of matching commits, read in one streamed `git log` process.

`git log --no-walk --stdin -z --raw -p` prints, for each commit, its raw entries (modes,
blob ids, status, exact paths) and then its patch. The raw entries give the file list and
the blob ids of the before and after text; the patch sections, keyed by the blob ids on
their `index` lines, give the unified diff. Full texts come from persistent `cat-file`
processes, many blobs per request and after a size check, so a 50 MB file is never loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from miners.git import BlobReader, iter_git_output
from miners.paths import SOURCE_PATHSPECS, is_test_path, language_of
from miners.records import ChangeType, CommitFiles, CommitMeta, FilePair, SkipReason

NULL_SHA = "0" * 40
DEFAULT_MAX_FILE_BYTES = 1_000_000
_STATUS = {"A": ChangeType.ADDED, "D": ChangeType.DELETED, "M": ChangeType.MODIFIED,
           "R": ChangeType.RENAMED, "C": ChangeType.COPIED, "T": ChangeType.TYPE_CHANGED}
_INDEX = re.compile(rb"^index ([0-9a-f]{40})\.\.([0-9a-f]{40})", re.MULTILINE)
# A record starts with \x01, the sha and a NUL; patch text never holds a NUL, so this
# cannot occur inside a record.
_RECORD = re.compile(rb"\x01(?=[0-9a-f]{40}\x00)")
_LFS_POINTER = b"version https://git-lfs.github.com/spec/"
_CODING = re.compile(rb"coding[:=]\s*(latin-1|latin1|iso-8859-1)", re.IGNORECASE)


@dataclass(frozen=True)
class RawEntry:
    """One line of `git log --raw -z`: a changed path and the blobs on both sides."""

    old_blob: str
    new_blob: str
    status: ChangeType
    path: str
    old_path: str | None
    is_file: bool = True  # False for a submodule (gitlink) or a symlink on either side


def _decode_path(raw: bytes) -> str:
    # Non-UTF-8 file names stay faithful as backslash escapes instead of crashing a run.
    return raw.decode("utf-8", errors="backslashreplace")


def parse_raw_entries(tokens: list[bytes]) -> tuple[list[RawEntry], int]:
    """Parse NUL-split raw tokens; return the entries and the index after the raw block."""
    entries: list[RawEntry] = []
    i = 0
    while i < len(tokens) and tokens[i].startswith(b":"):
        meta = tokens[i][1:].split()
        old_blob, new_blob, status = meta[2].decode(), meta[3].decode(), meta[4].decode()
        is_file = not ({meta[0], meta[1]} & {b"160000", b"120000"})
        kind = _STATUS.get(status[0], ChangeType.MODIFIED)
        if kind in (ChangeType.RENAMED, ChangeType.COPIED):
            old_path, path = _decode_path(tokens[i + 1]), _decode_path(tokens[i + 2])
            i += 3
        else:
            old_path, path = None, _decode_path(tokens[i + 1])
            i += 2
        entries.append(RawEntry(old_blob, new_blob, kind, path, old_path, is_file))
    return entries, i


def split_patch(patch: bytes) -> dict[tuple[str, str], bytes]:
    """Map (old blob, new blob) to that file's patch section; sections without content
    changes (pure renames, mode changes) have no `index` line and are left out."""
    sections: dict[tuple[str, str], bytes] = {}
    starts = [m.start() for m in re.finditer(rb"^diff --git ", patch, re.MULTILINE)]
    if not starts:
        return sections
    for begin, end in zip(starts, [*starts[1:], len(patch)], strict=True):
        section = patch[begin:end]
        header_end = section.find(b"\n@@")
        index = _INDEX.search(section, 0, header_end if header_end >= 0 else len(section))
        if index:
            sections[(index.group(1).decode(), index.group(2).decode())] = section
    return sections


def count_changed_lines(section: bytes) -> tuple[int, int]:
    """Lines added and removed in one patch section (hunk bodies only)."""
    first_hunk = section.find(b"\n@@")
    if first_hunk < 0:
        return 0, 0
    added = removed = 0
    for line in section[first_hunk + 1:].split(b"\n"):
        if line.startswith(b"+"):
            added += 1
        elif line.startswith(b"-"):
            removed += 1
    return added, removed


def decode_source(data: bytes, language: str) -> str | None:
    """Source text as str, or None when it cannot be decoded.

    Elixir source is UTF-8 by definition. Erlang source was Latin-1 by default before
    OTP 17 and may declare it, so Erlang falls back to Latin-1 rather than being lost.
    """
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        if language == "erlang" or _CODING.search(data[:400]):
            return data.decode("latin-1")
        return None


def _side(data: bytes | None, blob: str, language: str
          ) -> tuple[str | None, SkipReason | None]:
    if blob == NULL_SHA:
        return None, None
    if data is None:
        return None, SkipReason.TOO_LARGE
    if b"\0" in data[:8000]:  # git's own binary test
        return None, SkipReason.BINARY
    if data.startswith(_LFS_POINTER):  # the code is in LFS storage, not in this repository
        return None, SkipReason.LFS_POINTER
    text = decode_source(data, language)
    return (text, None) if text is not None else (None, SkipReason.UNDECODABLE)


def build_file_pair(entry: RawEntry, language: str, section: bytes | None,
                    texts: Mapping[str, bytes | None]) -> FilePair:
    """The FilePair for one source file's raw entry, its patch section and the blobs read
    (None for a blob over the size cap)."""
    before, skip_before = _side(texts.get(entry.old_blob), entry.old_blob, language)
    after, skip_after = _side(texts.get(entry.new_blob), entry.new_blob, language)
    skipped = skip_before or skip_after
    added, removed = count_changed_lines(section) if section else (0, 0)
    diff = None
    if section is not None and skipped is None:
        diff = decode_source(section, language)
    if skipped is not None:
        before = after = None
    return FilePair(path=entry.path, old_path=entry.old_path, change_type=entry.status,
                    language=language, is_test=is_test_path(entry.path), before=before,
                    after=after, diff=diff, lines_added=added, lines_removed=removed,
                    skipped_reason=skipped)


# A source file a commit changed: its raw entry, language and patch section.
_Source = tuple[RawEntry, str, "bytes | None"]


def _parse_record(record: bytes, commits: dict[str, CommitMeta]
                  ) -> tuple[CommitMeta, list[_Source]] | None:
    sha = record[:40].decode("ascii", errors="replace")
    commit = commits.get(sha)
    if commit is None:
        return None
    body = record[40:].lstrip(b"\0\n")
    tokens = body.split(b"\0")
    entries, used = parse_raw_entries(tokens)
    sections = split_patch(b"\0".join(tokens[used:]).lstrip(b"\0"))
    sources = []
    for entry in entries:
        language = language_of(entry.path)
        if language is not None and entry.is_file:  # a submodule's "blob" is a commit
            sources.append((entry, language, sections.get((entry.old_blob, entry.new_blob))))
    return commit, sources


def _commit_files(records: list[bytes], commits: dict[str, CommitMeta], blobs: BlobReader,
                  max_bytes: int) -> list[CommitFiles]:
    """The file pairs of whole records, with the blobs of all of them read at once."""
    parsed = [p for record in records if (p := _parse_record(record, commits)) is not None]
    texts = blobs.read((blob for _, sources in parsed for entry, _, _ in sources
                        for blob in (entry.old_blob, entry.new_blob) if blob != NULL_SHA),
                       max_bytes)
    return [CommitFiles(commit=commit, files=tuple(
                build_file_pair(entry, language, section, texts)
                for entry, language, section in sources))
            for commit, sources in parsed]


def iter_commit_files(git_dir: str, commits: Iterable[CommitMeta],
                      max_file_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Iterator[CommitFiles]:
    """File pairs of each given non-merge commit, in the order given, one git process."""
    wanted = {c.sha: c for c in commits if not c.is_merge}
    if not wanted:
        return
    # A file over the cap is treated as binary by git, so it is never diffed: it is
    # recorded as too large from its size alone (a 72 MB file cost seconds and hundreds of
    # MB to diff before it was skipped).
    args = ["-c", f"core.bigFileThreshold={max_file_bytes}",
            "log", "--no-walk=unsorted", "--stdin", "-z", "--raw", "-p", "--no-abbrev",
            "--full-index", "-M", "--no-color", "--no-ext-diff", "--no-textconv",
            "--format=%x01%H", "--", *SOURCE_PATHSPECS]
    seen: set[str] = set()
    pending = b""
    with BlobReader(git_dir) as blobs:
        for chunk in iter_git_output(git_dir, args, "".join(f"{sha}\n" for sha in wanted)):
            pending += chunk
            *records, pending = _RECORD.split(pending)
            for done in _commit_files(records, wanted, blobs, max_file_bytes):
                seen.add(done.commit.sha)
                yield done
        for done in _commit_files([pending], wanted, blobs, max_file_bytes):
            seen.add(done.commit.sha)
            yield done
    # A pathspec hides commits that touch no source file; they still get an empty record.
    for sha, commit in wanted.items():
        if sha not in seen:
            yield CommitFiles(commit=commit, files=())
