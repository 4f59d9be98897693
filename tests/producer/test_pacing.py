import itertools
import random

import pytest

from producer.pacing import Backoff, RateLimiter, Spacing


def test_backoff_grows_is_capped_jittered_and_resets() -> None:
    backoff = Backoff(initial_s=1.0, max_s=8.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(6)]
    caps = [1, 2, 4, 8, 8, 8]
    for delay, cap in zip(delays, caps, strict=True):
        assert cap / 2 <= delay <= cap
    assert len(set(delays)) == len(delays)  # jittered
    backoff.reset()
    assert 0.5 <= backoff.next_delay() <= 1.0


def test_rate_limiter_paces_to_the_rate() -> None:
    now = [0.0]
    limiter = RateLimiter(rate_per_s=5.0, burst=1.0, clock=lambda: now[0])
    assert limiter.reserve() == 0.0
    assert limiter.reserve() == pytest.approx(0.2)
    assert limiter.reserve() == pytest.approx(0.4)
    now[0] = 10.0  # idle: the bucket refills, but only up to the burst
    assert limiter.reserve() == 0.0
    assert limiter.reserve() == pytest.approx(0.2)


def test_five_messages_a_second_never_more() -> None:
    now = [0.0]
    limiter = RateLimiter(rate_per_s=5.0, clock=lambda: now[0])
    sent_at = []
    for _ in range(20):
        now[0] += limiter.reserve()
        sent_at.append(now[0])
    for i in range(len(sent_at) - 5):
        assert sent_at[i + 5] - sent_at[i] >= 1.0 - 1e-9


def test_spacing_counts_from_when_things_happen_so_a_late_one_never_crowds_the_next() -> None:
    now = [0.0]
    spacing = Spacing(interval_s=0.25, clock=lambda: now[0])
    sent_at = []
    for late in (0.0, 0.15, 0.0, 0.0, 0.3, 0.0, 0.0, 0.0):  # the event loop runs late at times
        now[0] += spacing.wait() + late
        spacing.mark()
        sent_at.append(now[0])
    assert sent_at[:3] == pytest.approx([0.0, 0.4, 0.65])
    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    assert min(gaps) >= 0.25 - 1e-9
    # A token bucket at the same rate would have let the third follow the late second at 0.5
    # (its booked slot): 0.1 s after it.
    limiter = RateLimiter(rate_per_s=4.0, clock=lambda: now[0])
    now[0] = 100.0
    booked = [limiter.reserve(), limiter.reserve(), limiter.reserve()]
    assert booked == pytest.approx([0.0, 0.25, 0.5])


def test_spacing_needs_a_positive_interval() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        Spacing(interval_s=0)
