"""The final state of a tracked run: what its runs row says, so Prefect shows it too."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prefect.settings import PREFECT_API_URL
from prefect.states import Completed, Failed, State

from flows.jobs.runs import RunStatus


def final_state(status: str, errors: Sequence[str], data: Any) -> State:
    """Completed, or Failed (named "Partially failed" when some of the work succeeded) with
    the errors as its message; the data is the flow's return value either way."""
    if status == RunStatus.COMPLETED:
        return Completed(data=data)
    message = "; ".join(errors)[:2000] or status
    name = "Partially failed" if status == RunStatus.PARTIALLY_FAILED else "Failed"
    return Failed(name=name, message=message, data=data)


def value_of(state: State) -> Any:
    """A finished run's return value, failed or not."""
    return state.result(raise_on_failure=False)


def server_configured() -> bool:
    """Whether the active Prefect settings (environment or profile) name an API server."""
    return bool(PREFECT_API_URL.value())
