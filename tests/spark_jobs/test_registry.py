"""The module registry: features.yaml alone switches modules; SSM overlays; bad entries fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from spark_jobs.common.detector import ModuleConfigError
from spark_jobs.common.registry import (
    DEFAULT_FEATURES,
    ModuleRegistry,
    discover,
    load_features,
    load_registry,
)
from tests.spark_jobs.fake_detectors.threshold import BigTradeDetector, TinyTradeDetector

CLASSES = {"MOD-900": BigTradeDetector, "MOD-901": TinyTradeDetector}


def features_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "features.yaml"
    path.write_text(text)
    return path


def test_discovery_finds_every_concrete_detector_by_module_id() -> None:
    assert discover("tests.spark_jobs.fake_detectors") == CLASSES


def test_the_file_alone_enables_and_disables_modules(tmp_path: Path) -> None:
    path = features_file(
        tmp_path,
        "modules:\n"
        "  MOD-900: {enabled: true, params: {threshold: 5}}\n"
        "  MOD-901: {enabled: false}\n",
    )
    registry = load_registry(path, classes=CLASSES)
    assert [d.module_id for d in registry.enabled()] == ["MOD-900"]
    assert registry.get("MOD-900").params == {"threshold": 5.0, "label": "big", "strict": True}
    with pytest.raises(ModuleConfigError, match="module MOD-901 is disabled"):
        registry.get("MOD-901")
    path.write_text("modules:\n  MOD-900: {enabled: false}\n  MOD-901: {enabled: true}\n")
    registry = load_registry(path, classes=CLASSES)
    assert [d.module_id for d in registry.enabled()] == ["MOD-901"]
    assert registry.by_job("tiny_trade").module_id == "MOD-901"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("modules:\n  MOD-999: {enabled: true}\n", "unknown module(s) ['MOD-999']"),
        (
            "modules:\n  MOD-900: {enabled: true, params: {treshold: 3}}\n",
            "MOD-900: unknown parameter(s) ['treshold']",
        ),
        (
            "modules:\n  MOD-900: {enabled: true, params: {threshold: high}}\n",
            "MOD-900: parameter 'threshold' must be float, got 'high'",
        ),
        (
            "modules:\n  MOD-900: {enabled: true, params: {threshold: -1}}\n",
            "MOD-900: threshold must be > 0",
        ),
        (
            "modules:\n  MOD-900: {enabled: yes please}\n",
            "MOD-900: 'enabled' must be true or false",
        ),
        ("modules:\n  MOD-900: {enabled: true, parms: {}}\n", "MOD-900: unknown key(s) ['parms']"),
        ("modules: [MOD-900]\n", "expected a mapping with a 'modules' mapping"),
    ],
)
def test_a_bad_entry_fails_at_start_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = features_file(tmp_path, text)
    with pytest.raises(ModuleConfigError) as raised:
        load_registry(path, classes=CLASSES)
    assert message in str(raised.value)
    assert str(path) in str(raised.value)


def test_ssm_overlay_changes_a_threshold_without_touching_the_file(
    tmp_path: Path, aws_env: dict[str, str]
) -> None:
    text = (
        "ssm_prefix: /crypto-pulse-test/features\n"
        "modules:\n"
        "  MOD-900: {enabled: true, params: {threshold: 5}}\n"
        "  MOD-901: {enabled: false}\n"
    )
    path = features_file(tmp_path, text)
    ssm: Any = boto3.client("ssm", region_name=aws_env["AWS_REGION"])
    ssm.put_parameter(
        Name="/crypto-pulse-test/features/MOD-900/threshold",
        Value="250000",
        Type="String",
        Overwrite=True,
    )
    ssm.put_parameter(
        Name="/crypto-pulse-test/features/MOD-901/enabled",
        Value="true",
        Type="String",
        Overwrite=True,
    )
    registry = load_registry(path, ssm=ssm, classes=CLASSES)
    assert registry.get("MOD-900").params["threshold"] == 250000.0
    assert registry.get("MOD-901").params["threshold"] == 10.0
    assert path.read_text() == text
    assert load_registry(path, classes=CLASSES).get("MOD-900").params["threshold"] == 5.0


def test_the_repository_features_file_parses() -> None:
    features = load_features(DEFAULT_FEATURES)
    assert set(features.modules) == {"MOD-001", "MOD-002", "MOD-003"}
    assert all(entry.enabled for entry in features.modules.values())
    assert features.modules["MOD-002"].params["threshold_quote_volume"] == 100000


def test_registry_with_explicit_classes_rejects_unknown_ids() -> None:
    features = load_features(DEFAULT_FEATURES)
    with pytest.raises(ModuleConfigError, match="unknown module"):
        ModuleRegistry(features, classes=CLASSES)
