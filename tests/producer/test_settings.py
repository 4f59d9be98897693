"""Configuration: defaults, environment parsing, and failures that name the setting."""

from __future__ import annotations

import subprocess
import sys

import pytest

from producer.errors import ConfigError
from producer.settings import load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("PRODUCER_"):
            monkeypatch.delenv(name)


def test_defaults_describe_the_production_setup() -> None:
    settings = load_settings()
    assert settings.stream_name == "crypto-pulse-trades"
    assert settings.exchanges == ("binance", "coinbase")
    assert settings.symbol_map().canonical("coinbase", "BTC-USD") == "BTC-USDT"
    assert settings.binance_ws_url == "wss://stream.binance.com:9443"
    assert (settings.batch_max_records, settings.batch_max_bytes, settings.linger_ms) == (
        500,
        5 * 1024 * 1024,
        100,
    )


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRODUCER_EXCHANGES", "Binance")
    monkeypatch.setenv("PRODUCER_SYMBOLS", '{"ETH-USDT": {"binance": "ETHUSDT"}}')
    monkeypatch.setenv("PRODUCER_LINGER_MS", "250")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    settings = load_settings()
    assert settings.exchanges == ("binance",)
    assert settings.symbol_map().natives("binance") == ["ETHUSDT"]
    assert settings.linger_ms == 250
    assert settings.aws_region == "eu-west-1"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PRODUCER_BATCH_MAX_RECORDS", "501", "PRODUCER_BATCH_MAX_RECORDS: Input should be less"),
        ("PRODUCER_BATCH_MAX_BYTES", "6000000", "PRODUCER_BATCH_MAX_BYTES"),
        ("PRODUCER_LINGER_MS", "soon", "PRODUCER_LINGER_MS: Input should be a valid integer"),
        (
            "PRODUCER_EXCHANGES",
            "binance,kraken",
            "PRODUCER_EXCHANGES: unknown exchange(s) ['kraken']",
        ),
        (
            "PRODUCER_SYMBOLS",
            '{"btc-usdt": {"binance": "BTCUSDT"}}',
            "PRODUCER_SYMBOLS: symbol 'btc-usdt'",
        ),
        ("PRODUCER_SYMBOLS", "not json", "PRODUCER_SYMBOLS"),
        ("PRODUCER_LOG_LEVEL", "LOUD", "PRODUCER_LOG_LEVEL"),
        ("PRODUCER_BINANCE_ROTATE_AFTER_S", "90000", "PRODUCER_BINANCE_ROTATE_AFTER_S"),
        ("PRODUCER_COINBASE_SUBSCRIBE_TIMEOUT_S", "9", "PRODUCER_COINBASE_SUBSCRIBE_TIMEOUT_S"),
    ],
)
def test_invalid_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert message in str(raised.value)
    assert str(raised.value).startswith("invalid configuration: ")


def test_cross_setting_rule_names_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PRODUCER_SYMBOLS", '{"ETH-USDT": {"binance": "ETHUSDT"}}')
    with pytest.raises(ConfigError, match="PRODUCER_EXCHANGES enables 'coinbase' but no symbol"):
        load_settings()


def test_the_service_refuses_to_start_on_invalid_config() -> None:
    env = {"PRODUCER_BATCH_MAX_RECORDS": "0", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "producer", "run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "PRODUCER_BATCH_MAX_RECORDS: Input should be greater than or equal to 1" in result.stderr


def test_the_process_gets_the_configured_gil_switch_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from producer.service import tune_process

    monkeypatch.setenv("PRODUCER_GIL_SWITCH_INTERVAL_MS", "2")
    before = sys.getswitchinterval()
    try:
        tune_process(load_settings())
        assert sys.getswitchinterval() == pytest.approx(0.002)
    finally:
        sys.setswitchinterval(before)
    monkeypatch.setenv("PRODUCER_GIL_SWITCH_INTERVAL_MS", "0")
    with pytest.raises(ConfigError, match="GIL_SWITCH_INTERVAL_MS"):
        load_settings()
