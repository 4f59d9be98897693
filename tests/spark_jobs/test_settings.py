"""Job settings: the YAML file, environment overrides, and failures that name the setting."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from spark_jobs.common.session import JavaMissingError, check_java
from spark_jobs.common.settings import SettingsError, load_job_settings


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CRYPTO_PULSE_"):
            monkeypatch.delenv(name)


def test_the_repository_file_is_the_default() -> None:
    settings = load_job_settings()
    assert settings.symbols["BTC-USDT"] == {"binance": "BTCUSDT", "coinbase": "BTC-USD"}
    assert settings.stream.name == "crypto-pulse-trades"
    assert settings.streaming.watermark_s == 120
    assert settings.checkpoint("whale_detector") == "var/checkpoints/whale_detector"


def test_environment_overrides_nested_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRYPTO_PULSE_STREAMING__WATERMARK_S", "30")
    monkeypatch.setenv("CRYPTO_PULSE_STREAM__NAME", "other-stream")
    monkeypatch.setenv("CRYPTO_PULSE_RAW_ZONE", "s3://bucket/raw")
    settings = load_job_settings()
    assert settings.streaming.watermark_s == 30
    assert settings.streaming.trigger_interval_s == 5.0  # the file's value survives
    assert settings.stream.name == "other-stream"
    assert settings.resolve_path(settings.raw_zone) == "s3://bucket/raw"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CRYPTO_PULSE_STREAMING__WATERMARK_S", "-1", "CRYPTO_PULSE_STREAMING__WATERMARK_S"),
        ("CRYPTO_PULSE_STREAM__SOURCE", "kafka", "CRYPTO_PULSE_STREAM__SOURCE"),
        ("CRYPTO_PULSE_EXCHANGES", '["binance","kraken"]', "CRYPTO_PULSE_EXCHANGES: unknown"),
        ("CRYPTO_PULSE_SYMBOLS", '{"btc": {}}', "CRYPTO_PULSE_SYMBOLS: symbol 'btc'"),
    ],
)
def test_invalid_settings_fail_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as raised:
        load_job_settings()
    assert message in str(raised.value)


def test_another_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "pipeline.yaml"
    config.write_text("symbols: {SOL-USDT: {binance: SOLUSDT}}\nexchanges: [binance]\n")
    monkeypatch.setenv("CRYPTO_PULSE_CONFIG", str(config))
    settings = load_job_settings()
    assert list(settings.symbols) == ["SOL-USDT"]
    assert settings.exchanges == ("binance",)
    monkeypatch.setenv("CRYPTO_PULSE_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(SettingsError, match="CRYPTO_PULSE_CONFIG: no such file"):
        load_job_settings()


def test_a_missing_java_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(JavaMissingError, match="Spark needs Java 17 or newer"):
        check_java()
