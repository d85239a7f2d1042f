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


@dataclass(frozen=True)
class CommitFiles:
    """A matching commit with the file pairs extracted from it."""

    commit: CommitMeta
    files: tuple[FilePair, ...] = field(default=())
