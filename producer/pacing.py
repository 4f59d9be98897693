"""Time policies as pure objects with an injectable clock: reconnect backoff and rate limits."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Capped exponential backoff with jitter ("equal jitter": half fixed, half random), reset
    after a healthy connection so one blip does not cost the full cap next time."""

    initial_s: float
    max_s: float
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        cap = min(self.max_s, self.initial_s * self.factor**self.attempt)
        self.attempt += 1
        return cap / 2 + self.rng.uniform(0, cap / 2)

    def reset(self) -> None:
        self.attempt = 0


@dataclass
class RateLimiter:
    """Token bucket: `rate_per_s` sustained, up to `burst` at once. `reserve()` takes a token and
    returns how long to wait before using it (0 when one is available now)."""

    rate_per_s: float
    burst: float = 1.0
    clock: Callable[[], float] = time.monotonic
    _tokens: float = field(init=False)
    _updated: float = field(init=False)

    def __post_init__(self) -> None:
        if self.rate_per_s <= 0 or self.burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self._tokens = self.burst
        self._updated = self.clock()

    def reserve(self) -> float:
        now = self.clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate_per_s)
        self._updated = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate_per_s


@dataclass
class Spacing:
    """At least `interval_s` between the moments things actually happen: `wait()` says how long
    until the next may, `mark()` records that one happens now.

    A token bucket books slots: a message sent late (the event loop busy when its sleep ended)
    leaves the next ones on their booked slots, closer to it than the interval, and a receiver
    that counts arrivals in any one-second window (Binance) can see one too many. Spacing from
    the actual moments never crowds: n + 1 of them span at least n intervals."""

    interval_s: float
    clock: Callable[[], float] = time.monotonic
    _last: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.interval_s <= 0:
            raise ValueError("interval_s must be > 0")

    def wait(self) -> float:
        if self._last is None:
            return 0.0
        return max(0.0, self._last + self.interval_s - self.clock())

    def mark(self) -> None:
        self._last = self.clock()
