"""Throughput and spending limits for LLM calls: rate windows, budget, prices."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

# USD per million tokens (input, output). Estimates for well-known hosted models; anything
# else (local vLLM, Ollama, llama.cpp) costs 0 unless RACEMINE_LLM_PRICE_IN/OUT say otherwise.
PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
}


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input_per_mtok + tokens_out * self.output_per_mtok) / 1e6


def price_for(model: str, input_override: float | None = None,
              output_override: float | None = None) -> Price:
    """The price of a model: overrides first, then the table, else free (local servers)."""
    base = PRICES.get(model, (0.0, 0.0))
    return Price(base[0] if input_override is None else input_override,
                 base[1] if output_override is None else output_override)


class RateLimiter:
    """At most `requests` requests and `tokens` tokens in any sliding window (a minute)."""

    def __init__(self, requests: int | None, tokens: int | None, window_s: float = 60.0
                 ) -> None:
        self._requests = requests
        self._tokens = tokens
        self._window = window_s
        self._events: deque[tuple[float, int]] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: int) -> None:
        if self._requests is None and self._tokens is None:
            return
        async with self._lock:
            while True:
                now = time.monotonic()
                while self._events and now - self._events[0][0] >= self._window:
                    self._events.popleft()
                used = sum(t for _, t in self._events)
                if (self._requests is None or len(self._events) < self._requests) and (
                        self._tokens is None or used + tokens <= self._tokens
                        or not self._events):
                    self._events.append((now, tokens))
                    return
                await asyncio.sleep(max(0.01, self._window - (now - self._events[0][0])))


class Budget:
    """Running spend of one run; once exhausted, no new request starts."""

    def __init__(self, max_usd: float | None, max_tokens: int | None) -> None:
        self.max_usd = max_usd
        self.max_tokens = max_tokens
        self.usd = 0.0
        self.tokens = 0

    def charge(self, tokens: int, usd: float) -> None:
        self.tokens += tokens
        self.usd += usd

    @property
    def exhausted(self) -> bool:
        return ((self.max_usd is not None and self.usd >= self.max_usd)
                or (self.max_tokens is not None and self.tokens >= self.max_tokens))
