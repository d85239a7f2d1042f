"""Plain frozen records that leave the git edge; nothing here holds a repository handle."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class ChangeType(StrEnum):
    ADDED = "added"
    DELETED = "deleted"
    MODIFIED = "modified"
    RENAMED = "renamed"
    COPIED = "copied"
    TYPE_CHANGED = "type_changed"


class SkipReason(StrEnum):
    BINARY = "binary"
    TOO_LARGE = "too_large"
    UNDECODABLE = "undecodable"
    LFS_POINTER = "lfs_pointer"


@dataclass(frozen=True)
class RepoRef:
    """Where a repository's git data lives and the canonical name it is stored under."""

    name: str  # canonical: host/owner/name, e.g. github.com/elixir-ecto/db_connection
    url: str | None  # clone URL for remote repositories, None for local paths
    git_dir: str  # path git is run against (a bare mirror, a bare dir or a work tree)
    is_local: bool


@dataclass(frozen=True)
class CommitMeta:
    """What one `git log` record says about a commit (no diff)."""

    sha: str
    parents: tuple[str, ...]
    author_name: str
    author_date: str  # ISO 8601 with offset
    committer_date: str
    message: str

    @property
    def subject(self) -> str:
        return self.message.split("\n", 1)[0].strip()

    @property
    def is_merge(self) -> bool:
        return len(self.parents) > 1


class ParseStatus(StrEnum):
    PARSED = "parsed"
    PARTIAL = "partial"  # the grammar failed somewhere; units outside the error are kept
    SYNTAX_ERROR = "syntax_error"  # nothing usable


@dataclass(frozen=True)
class Function:
    """One function unit of a source text: all its clauses, 1-based inclusive lines."""

    module: str
    name: str  # name/arity, or test "description"
    kind: str  # def | defp | defmacro | defmacrop | defguard | defdelegate | test | function
    start_line: int
    end_line: int
    text: str


@dataclass(frozen=True)
class FunctionPair:
    """A function whose text differs between the before and after version of a file."""

    module: str
    name: str
    kind: str
    change: str  # added | removed | modified
    before: Function | None
    after: Function | None


@dataclass(frozen=True)
class FilePair:
    """One modified Elixir/Erlang file of a commit: before and after text plus its diff."""

    path: str
    old_path: str | None
    change_type: ChangeType
    language: str  # "elixir" | "erlang"
    is_test: bool
    before: str | None
    after: str | None
    diff: str | None
    lines_added: int
    lines_removed: int
    skipped_reason: SkipReason | None = None
    parse_status: ParseStatus | None = None  # None until function extraction ran
    functions: tuple[FunctionPair, ...] = ()


@dataclass(frozen=True)
class CommitFiles:
    """A matching commit with the file pairs extracted from it."""

    commit: CommitMeta
    files: tuple[FilePair, ...] = field(default=())
