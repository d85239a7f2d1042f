"""Errors raised by the git edge; each message names the object and what to do."""


class MinerError(Exception):
    """Base class: a repository or input the miner cannot work with."""


class UnsafeSourceError(MinerError):
    """A repository spec that could make git run commands or touch unexpected places."""


class RepoNotFoundError(MinerError):
    """A local path or remote URL that is not a git repository."""


class RemoteUnreachableError(MinerError):
    """A remote whose host does not resolve or refuses connections: retrying will not help."""


class GitCommandError(MinerError):
    """A git command failed; the message carries git's own last line."""


class PatternFileError(MinerError):
    """A classifier pattern file that cannot be read or has an invalid entry."""
