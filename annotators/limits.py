"""Throughput and spending limits for LLM calls: rate windows, budget, prices."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

# USD per million tokens (input, cached input, output): estimates for well-known hosted
# models; a dated snapshot ("gpt-4o-mini-2024-07-18") takes its family's price. Anything else
# (local vLLM, Ollama, llama.cpp) costs 0 unless RACEMINE_LLM_PRICE_IN/OUT say otherwise.
PRICES: dict[str, tuple[float, float, float]] = {
    "gpt-4o": (2.50, 1.25, 10.00),
    "gpt-4o-mini": (0.15, 0.075, 0.60),
    "gpt-4.1": (2.00, 0.50, 8.00),
    "gpt-4.1-mini": (0.40, 0.10, 1.60),
    "gpt-4.1-nano": (0.10, 0.025, 0.40),
    "o3": (2.00, 0.50, 8.00),
    "o4-mini": (1.10, 0.275, 4.40),
    "gpt-5": (1.25, 0.125, 10.00),
    "gpt-5-mini": (0.25, 0.025, 2.00),
    "gpt-5-nano": (0.05, 0.005, 0.40),
}
BATCH_DISCOUNT = 0.5  # OpenAI's Batch API bills half


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None  # None: cached tokens cost as input
    known: bool = True  # False: no price was found, so the budget in USD cannot work

    def cost(self, tokens_in: int, tokens_out: int, cached: int = 0, *,
             batch: bool = False) -> float:
        """USD for a request; cached counts the input tokens a prefix cache served."""
        cached = min(cached, tokens_in)
        cached_rate = self.input_per_mtok if self.cached_input_per_mtok is None \
            else self.cached_input_per_mtok
        usd = ((tokens_in - cached) * self.input_per_mtok + cached * cached_rate
               + tokens_out * self.output_per_mtok) / 1e6
        return usd * BATCH_DISCOUNT if batch else usd


def _family(model: str) -> tuple[float, float, float] | None:
    """The table entry of model or of the longest name it extends ("gpt-4o-mini-2024-…")."""
    name = model.rsplit("/", 1)[-1].lower()
    matches = [k for k in PRICES if name == k or name.startswith(k + "-")]
    return PRICES[max(matches, key=len)] if matches else None


def price_for(model: str, input_override: float | None = None,
              output_override: float | None = None) -> Price:
    """The price of a model: overrides first, then the table, else free (local servers)."""
    base = _family(model)
    if base is None and input_override is None and output_override is None:
        return Price(0.0, 0.0, known=False)
    fin, fcached, fout = base or (0.0, None, 0.0)
    return Price(fin if input_override is None else input_override,
                 fout if output_override is None else output_override,
                 fcached if input_override is None else None)


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
