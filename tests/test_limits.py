"""Rate windows, budgets and prices for LLM calls."""

from __future__ import annotations

import asyncio
import time

from annotators.limits import Budget, RateLimiter, price_for


def test_rate_limiter_spreads_requests_over_windows() -> None:
    """With 2 requests per window, the 5th request waits two windows."""

    async def run() -> float:
        limiter = RateLimiter(requests=2, tokens=None, window_s=0.3)
        started = time.monotonic()
        for _ in range(5):
            await limiter.acquire(10)
        return time.monotonic() - started

    elapsed = asyncio.run(run())
    assert 0.55 <= elapsed < 1.5


def test_token_limit_waits_for_room() -> None:
    """A request that would pass the token limit waits for the window to clear."""

    async def run() -> float:
        limiter = RateLimiter(requests=None, tokens=100, window_s=0.3)
        started = time.monotonic()
        await limiter.acquire(80)
        await limiter.acquire(80)
        return time.monotonic() - started

    assert asyncio.run(run()) >= 0.25


def test_budget_and_prices() -> None:
    """Budgets trip on either limit; unknown models are free unless overridden."""
    budget = Budget(max_usd=1.0, max_tokens=None)
    budget.charge(10, 0.4)
    assert not budget.exhausted
    budget.charge(10, 0.6)
    assert budget.exhausted
    assert price_for("my-local-model").cost(1_000_000, 1_000_000) == 0.0
    assert price_for("gpt-4o-mini").cost(1_000_000, 0) == 0.15
    assert price_for("gpt-4o-mini", 1.0, 2.0).cost(1_000_000, 1_000_000) == 3.0
