"""The producer's configuration, from the environment (pydantic-settings), parsed once in main."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from producer.errors import ConfigError
from producer.events import EXCHANGES
from producer.exchanges import Binance, Coinbase
from producer.symbols import SymbolMap

# Kinesis PutRecords hard limits.
PUT_RECORDS_MAX_RECORDS = 500
PUT_RECORDS_MAX_BYTES = 5 * 1024 * 1024

# Default symbol map: Coinbase has no BTC-USDT book, so its BTC-USD is the USD-quoted proxy.
DEFAULT_SYMBOLS: dict[str, dict[str, str]] = {
    "BTC-USDT": {"binance": "BTCUSDT", "coinbase": "BTC-USD"},
}


class ProducerSettings(BaseSettings):
    """Every setting has an environment variable `PRODUCER_<NAME>` (AWS ones keep their usual
    names). Lists are comma-separated; `PRODUCER_SYMBOLS` is JSON."""

    model_config = SettingsConfigDict(env_prefix="PRODUCER_", frozen=True, extra="ignore")

    stream_name: str = Field(default="crypto-pulse-trades", min_length=1, max_length=128)
    aws_region: str = Field(default="us-east-1", validation_alias="AWS_REGION", min_length=1)
    aws_endpoint_url: str | None = Field(default=None, validation_alias="AWS_ENDPOINT_URL")

    exchanges: Annotated[tuple[str, ...], NoDecode] = EXCHANGES
    symbols: Annotated[dict[str, dict[str, str]], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_SYMBOLS)
    )

    binance_ws_url: str = Binance.ws_url
    binance_rest_url: str = Binance.rest_url
    coinbase_ws_url: str = Coinbase.ws_url
    coinbase_rest_url: str = Coinbase.rest_url

    # Publisher: PutRecords batches flushed when full or after the linger time.
    batch_max_records: int = Field(
        default=PUT_RECORDS_MAX_RECORDS, ge=1, le=PUT_RECORDS_MAX_RECORDS
    )
    batch_max_bytes: int = Field(default=PUT_RECORDS_MAX_BYTES, ge=1024, le=PUT_RECORDS_MAX_BYTES)
    linger_ms: int = Field(default=100, ge=0, le=60_000)
    publish_max_in_flight: int = Field(default=4, ge=1, le=64)
    # CPython's GIL switch interval for the producer process (`service.tune_process`).
    gil_switch_interval_ms: float = Field(default=0.5, gt=0, le=100)
    publish_retry_max_s: float = Field(default=120.0, gt=0)
    publish_backoff_max_s: float = Field(default=5.0, gt=0)
    spill_path: str | None = None
    queue_max_events: int = Field(default=100_000, ge=1)

    # Connections.
    reconnect_initial_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    healthy_after_s: float = Field(default=30.0, ge=0)
    stale_after_s: float = Field(default=30.0, gt=0)
    binance_rotate_after_s: float = Field(default=23.5 * 3600, gt=0, le=Binance.max_connection_s)
    coinbase_subscribe_timeout_s: float = Field(
        default=Coinbase.subscribe_deadline_s, gt=0, le=Coinbase.subscribe_deadline_s
    )
    rest_timeout_s: float = Field(default=10.0, gt=0)

    # Service.
    shutdown_timeout_s: float = Field(default=20.0, gt=0)
    health_host: str = "0.0.0.0"
    health_port: int = Field(default=8080, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("exchanges", mode="before")
    @classmethod
    def _split_exchanges(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip().lower() for part in value.split(",") if part.strip())
        return value

    @field_validator("exchanges")
    @classmethod
    def _known_exchanges(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(EXCHANGES))
        if unknown:
            raise ValueError(f"unknown exchange(s) {unknown}; known: {list(EXCHANGES)}")
        if not value:
            raise ValueError("at least one exchange is required")
        return value

    @field_validator("symbols", mode="before")
    @classmethod
    def _symbols_json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(
                    'must be JSON like {"BTC-USDT": {"binance": "BTCUSDT", "coinbase": "BTC-USD"}}'
                    f" ({exc})"
                ) from None
        return value

    @field_validator("symbols")
    @classmethod
    def _valid_symbols(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        if not value:
            raise ValueError("at least one symbol is required")
        for canonical, products in value.items():
            base, sep, quote = canonical.partition("-")
            if not (sep and base and quote and canonical == canonical.upper()):
                raise ValueError(f"symbol {canonical!r} is not canonical BASE-QUOTE upper case")
            unknown = sorted(set(products) - set(EXCHANGES))
            if unknown:
                raise ValueError(f"symbol {canonical!r} names unknown exchange(s) {unknown}")
            if not products or not all(products.values()):
                raise ValueError(f"symbol {canonical!r} needs a native product per exchange")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ProducerSettings:
        if self.reconnect_initial_s > self.reconnect_max_s:
            raise ValueError(
                "PRODUCER_RECONNECT_INITIAL_S must not exceed PRODUCER_RECONNECT_MAX_S"
            )
        for exchange in self.exchanges:
            if not any(exchange in products for products in self.symbols.values()):
                raise ValueError(
                    f"PRODUCER_EXCHANGES enables {exchange!r} but no symbol in PRODUCER_SYMBOLS"
                    " maps to it"
                )
        return self

    def symbol_map(self) -> SymbolMap:
        return SymbolMap({s: dict(p) for s, p in self.symbols.items()})

    def masked(self) -> dict[str, Any]:
        """The settings for the start-up log line (nothing secret is configured here)."""
        return self.model_dump()


def load_settings(**overrides: Any) -> ProducerSettings:
    """Parse the environment; invalid values raise ConfigError naming the environment variable."""
    try:
        return ProducerSettings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        if not error["loc"]:  # a rule across settings: its message names them
            lines.append(str(error["msg"]).removeprefix("Value error, "))
            continue
        field = str(error["loc"][0])
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{env_name(field)}: {message} (got {error.get('input')!r})")
    return "invalid configuration: " + "; ".join(lines)


def env_name(field: str) -> str:
    """The environment variable that sets `field`."""
    info = ProducerSettings.model_fields.get(field)
    if info is not None and isinstance(info.validation_alias, str):
        return info.validation_alias
    return f"PRODUCER_{field.upper()}"
