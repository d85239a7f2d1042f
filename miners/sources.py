"""Turn what a user typed (URL, owner/name, path) into a RepoRef, refusing unsafe specs."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from miners.errors import RepoNotFoundError, UnsafeSourceError

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_HOST = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,252}(:[0-9]{1,5})?$")
_GITHUB_SHORT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9-]{0,38})/([A-Za-z0-9._-]{1,100})$")
_SCP_LIKE = re.compile(r"^(?:[A-Za-z0-9._-]+@)?([A-Za-z0-9.-]+):(?!/)(.+)$")


@dataclass(frozen=True)
class RemoteSpec:
    """A remote repository: the URL git clones and the canonical host/owner/name."""

    url: str
    host: str
    path: tuple[str, ...]  # owner, name (GitLab subgroups give more segments)

    @property
    def name(self) -> str:
        return "/".join((self.host.lower(), *self.path))


def _clean_segments(raw_path: str, spec: str) -> tuple[str, ...]:
    parts = [p for p in raw_path.strip("/").split("/") if p]
    if parts and parts[-1].endswith(".git"):
        parts[-1] = parts[-1][: -len(".git")]
    if len(parts) < 2 or not all(_SEGMENT.match(p) and p not in (".", "..") for p in parts):
        raise UnsafeSourceError(
            f"repository {spec!r}: its path must be owner/name made of letters, digits, '.', "
            "'_' or '-'; pass a plain clone URL such as https://github.com/owner/name"
        )
    return tuple(parts)


def parse_remote_spec(spec: str) -> RemoteSpec:
    """Parse an https/ssh URL, an scp-like `git@host:owner/name` or a GitHub `owner/name`."""
    if spec.startswith("-"):
        raise UnsafeSourceError(
            f"repository {spec!r}: starts with '-', which git would read as an option; "
            "pass a clone URL or a path"
        )
    if "::" in spec.split("/", 1)[0] or spec.lower().startswith(("ext:", "fd:")):
        raise UnsafeSourceError(
            f"repository {spec!r}: git remote helpers (ext::, fd::) can run commands and are "
            "refused; pass an https or ssh clone URL"
        )
    short = _GITHUB_SHORT.match(spec)
    if short and ":" not in spec:
        owner, name = short.groups()
        path = _clean_segments(f"{owner}/{name}", spec)
        return RemoteSpec(f"https://github.com/{'/'.join(path)}.git", "github.com", path)
    parts = urlsplit(spec)
    if parts.scheme in ("https", "ssh"):
        host = parts.hostname or ""
        hostport = f"{host}:{parts.port}" if parts.port else host
        if not _HOST.match(hostport):
            raise UnsafeSourceError(f"repository {spec!r}: invalid host; pass a clone URL")
        if parts.query or parts.fragment:
            raise UnsafeSourceError(
                f"repository {spec!r}: a clone URL has no query or fragment; remove them"
            )
        if parts.password:
            raise UnsafeSourceError(
                f"repository {spec!r}: credentials in the URL would be stored in the cache; "
                "use RACEMINE_GITHUB_TOKEN or a git credential helper instead"
            )
        path = _clean_segments(parts.path, spec)
        return RemoteSpec(spec, host.lower(), path)
    if parts.scheme:
        raise UnsafeSourceError(
            f"repository {spec!r}: the {parts.scheme}:// transport is not allowed; "
            "pass an https or ssh clone URL, or a local path"
        )
    scp = _SCP_LIKE.match(spec)
    if scp:
        host, raw_path = scp.groups()
        if not _HOST.match(host):
            raise UnsafeSourceError(f"repository {spec!r}: invalid host; pass a clone URL")
        return RemoteSpec(spec, host.lower(), _clean_segments(raw_path, spec))
    raise RepoNotFoundError(
        f"repository {spec!r}: not an existing path, an https/ssh URL or a GitHub owner/name; "
        "check the spelling"
    )


def cache_dir_for(remote: RemoteSpec, cache_root: Path) -> Path:
    """The bare mirror's folder under cache_root: host/owner/name.git, never outside it."""
    target = cache_root.joinpath(remote.host.replace(":", "_"), *remote.path[:-1],
                                 remote.path[-1] + ".git")
    root = cache_root.resolve()
    if not target.resolve().is_relative_to(root):
        raise UnsafeSourceError(f"repository {remote.url!r}: would leave the cache folder")
    return target


def canonical_name_from_url(url: str) -> str | None:
    """host/owner/name for a remote URL, or None when it is not a remote we understand."""
    try:
        return parse_remote_spec(url.strip()).name
    except (UnsafeSourceError, RepoNotFoundError):
        return None


def is_local_spec(spec: str) -> bool:
    """True when spec names an existing folder (paths win over GitHub owner/name shorthand)."""
    return not spec.startswith("-") and Path(spec).expanduser().is_dir()


def check_spec(spec: str) -> None:
    """Raise the error mining spec would hit, before any work starts."""
    if not is_local_spec(spec):
        parse_remote_spec(spec)


def canonical_local_name(name: str) -> str:
    """The warehouse name a user gives a local repository: GitHub's owner/name shorthand
    becomes github.com/owner/name, as it does for a remote; any other name is kept."""
    name = name.strip().strip("/")
    parts = name.split("/")
    if len(parts) == 2 and parts[0] != "local" and "." not in parts[0] and all(parts):
        return f"github.com/{name}"
    return name
