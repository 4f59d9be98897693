"""The Binance REST adapter of the historical loader: `GET /api/v3/historicalTrades` over urllib
(the standard library: a batch job needs no HTTP dependency), paced by a `WeightBudget`,
waiting out 429/418 `Retry-After`, normalized by the producer's pure Binance parser.
"""

from __future__ import annotations

import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message

from producer.events import TradeEvent, utc_now_iso
from producer.exchanges.binance import Binance
from spark_jobs.batch.history import RateLimitedError, RestError, WeightBudget, retry_after_s

log = logging.getLogger(__name__)

RATE_LIMITED = (418, 429)  # 429: over a limit; 418: banned for ignoring 429s (Retry-After says)


@dataclass
class RestStats:
    requests: int = 0
    rate_limited: int = 0  # 429/418 answers, each waited out
    retry_after_s: list[float] = field(default_factory=list)  # what each of them asked for
    budget_wait_s: float = 0.0  # waited to stay under the weight budget
    transient_retries: int = 0  # connection errors and 5xx, retried


@dataclass(frozen=True)
class _Answer:
    status: int
    headers: Message
    body: bytes


class BinanceRestClient:
    """One native product's historical trades, page by page.

    `sleep` and the budget's clock are injectable; `max_retry_after_s` bounds one wait (a 418 ban
    can last days: better to fail and rerun, the loader is resumable), `max_rate_limited` the
    429/418 answers in a row, `max_transient` the retries of one request on connection errors
    and 5xx.
    """

    def __init__(
        self,
        rest_url: str,
        product: str,
        exchange: Binance,
        budget: WeightBudget,
        *,
        timeout_s: float = 10.0,
        max_retry_after_s: float = 600.0,
        max_rate_limited: int = 10,
        max_transient: int = 5,
        sleep: Callable[[float], None] = time.sleep,
        now_iso: Callable[[], str] = utc_now_iso,
    ) -> None:
        self.rest_url = rest_url.rstrip("/")
        self.product = product
        self.exchange = exchange
        self.budget = budget
        self.timeout_s = timeout_s
        self.max_retry_after_s = max_retry_after_s
        self.max_rate_limited = max_rate_limited
        self.max_transient = max_transient
        self.sleep = sleep
        self.now_iso = now_iso
        self.stats = RestStats()

    def page(self, from_id: int, limit: int) -> list[TradeEvent]:
        """Trades with ids >= `from_id`, at most `limit` (≤ 1000), ascending."""
        params = self.exchange.trades_params(self.product, from_id, limit)
        return self._trades(params)

    def latest(self) -> TradeEvent | None:
        """The most recent trade (None when the product has none)."""
        trades = self._trades(self.exchange.latest_trade_params(self.product))
        return trades[-1] if trades else None

    def _trades(self, params: Mapping[str, str]) -> list[TradeEvent]:
        body = self._get(Binance.trades_path, params, Binance.trades_weight)
        try:
            return self.exchange.parse_rest_trades(self.product, body, self.now_iso())
        except ValueError as exc:
            raise RestError(f"GET {Binance.trades_path} {dict(params)}: {exc}") from None

    def _get(self, path: str, params: Mapping[str, str], weight: int) -> bytes:
        url = f"{self.rest_url}{path}?{urllib.parse.urlencode(params)}"
        rate_limited = transient = 0
        while True:
            wait = self.budget.wait_s(weight)
            if wait > 0:
                log.info("weight budget of %s reached: waiting %.1f s", self.budget.budget, wait)
                self.stats.budget_wait_s += wait
                self.sleep(wait)
            self.budget.spend(weight)
            self.stats.requests += 1
            try:
                answer = self._send(url)
            except OSError as exc:  # URLError, timeouts, resets
                transient += 1
                if transient > self.max_transient:
                    raise RestError(f"GET {url}: {exc}") from None
                self._back_off(transient, f"{exc}")
                continue
            self.budget.observe(answer.headers.get(Binance.weight_header))
            if answer.status in RATE_LIMITED:
                rate_limited += 1
                self._wait_retry_after(url, answer, rate_limited)
                continue
            if answer.status >= 500:
                transient += 1
                if transient > self.max_transient:
                    raise RestError(f"GET {url} -> {answer.status}: {answer.body[:200]!r}")
                self._back_off(transient, f"HTTP {answer.status}")
                continue
            if answer.status >= 400:
                raise RestError(f"GET {url} -> {answer.status}: {answer.body[:200]!r}")
            return answer.body

    def _send(self, url: str) -> _Answer:
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return _Answer(response.status, response.headers, response.read())
        except urllib.error.HTTPError as exc:  # 4xx/5xx: an answer, not a failure to connect
            with exc:
                return _Answer(exc.code, exc.headers, exc.read())

    def _wait_retry_after(self, url: str, answer: _Answer, in_a_row: int) -> None:
        wait = retry_after_s(answer.headers.get("Retry-After"))
        self.stats.rate_limited += 1
        self.stats.retry_after_s.append(wait)
        if in_a_row > self.max_rate_limited or wait > self.max_retry_after_s:
            raise RateLimitedError(
                f"GET {url} -> {answer.status} ({in_a_row} in a row, Retry-After {wait:g} s): "
                f"{answer.body[:200]!r}; rerun later, the load resumes where it stopped"
            )
        log.warning("HTTP %s: waiting Retry-After %g s", answer.status, wait)
        self.sleep(wait)

    def _back_off(self, attempt: int, why: str) -> None:
        wait = min(30.0, 0.5 * 2 ** (attempt - 1))
        self.stats.transient_retries += 1
        log.warning("%s: retrying in %.1f s", why, wait)
        self.sleep(wait)
