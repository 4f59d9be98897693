"""The module registry: which detectors exist (discovered) and which run (configured).

`config/features.yaml` enables modules and sets their parameters; on AWS an optional SSM
Parameter Store prefix overlays it (`<prefix>/<MODULE_ID>/<param>`, values as YAML scalars;
`<prefix>/<MODULE_ID>/enabled` switches a module).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from spark_jobs.common.detector import BaseDetector, ModuleConfigError
from spark_jobs.common.settings import REPO_ROOT

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

DEFAULT_FEATURES = REPO_ROOT / "config" / "features.yaml"
DETECTOR_PACKAGE = "spark_jobs.detectors"


@dataclass(frozen=True)
class ModuleEntry:
    enabled: bool
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Features:
    modules: dict[str, ModuleEntry]
    ssm_prefix: str | None = None
    source: str = str(DEFAULT_FEATURES)


def parse_features(document: Any, source: str) -> Features:
    """The features file's content -> Features; a bad entry fails naming it."""
    if not isinstance(document, dict) or not isinstance(document.get("modules"), dict):
        raise ModuleConfigError(f"{source}: expected a mapping with a 'modules' mapping")
    modules = {}
    for module_id, entry in document["modules"].items():
        where = f"{source}: {module_id}"
        if not isinstance(entry, dict):
            raise ModuleConfigError(f"{where}: expected a mapping, got {entry!r}")
        unknown = sorted(set(entry) - {"enabled", "params"})
        if unknown:
            raise ModuleConfigError(f"{where}: unknown key(s) {unknown}")
        enabled = entry.get("enabled", False)
        params = entry.get("params") or {}
        if not isinstance(enabled, bool):
            raise ModuleConfigError(f"{where}: 'enabled' must be true or false, got {enabled!r}")
        if not isinstance(params, dict):
            raise ModuleConfigError(f"{where}: 'params' must be a mapping, got {params!r}")
        modules[str(module_id)] = ModuleEntry(enabled, dict(params))
    prefix = document.get("ssm_prefix")
    if prefix is not None and not (isinstance(prefix, str) and prefix.startswith("/")):
        raise ModuleConfigError(f"{source}: ssm_prefix must be a path like /crypto-pulse/features")
    return Features(modules, prefix, source)


def load_features(path: Path | str = DEFAULT_FEATURES) -> Features:
    path = Path(path)
    try:
        document = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ModuleConfigError(f"{path}: cannot read: {exc}") from None
    return parse_features(document, str(path))


def overlay_ssm(features: Features, client: SSMClient) -> Features:
    """Apply `<ssm_prefix>/<MODULE_ID>/<name>` parameters over the file's values."""
    if not features.ssm_prefix:
        return features
    prefix = features.ssm_prefix.rstrip("/")
    modules = {k: replace(v, params=dict(v.params)) for k, v in features.modules.items()}
    paginator = client.get_paginator("get_parameters_by_path")
    for page in paginator.paginate(Path=prefix, Recursive=True, WithDecryption=True):
        for parameter in page["Parameters"]:
            relative = parameter["Name"][len(prefix) :].strip("/")
            module_id, _, name = relative.partition("/")
            where = f"SSM {parameter['Name']}"
            if not name or "/" in name:
                raise ModuleConfigError(f"{where}: expected {prefix}/<MODULE_ID>/<name>")
            value = yaml.safe_load(parameter["Value"])
            entry = modules.get(module_id, ModuleEntry(False))
            if name == "enabled":
                if not isinstance(value, bool):
                    raise ModuleConfigError(f"{where}: must be true or false, got {value!r}")
                modules[module_id] = replace(entry, enabled=value)
            else:
                modules[module_id] = replace(entry, params={**entry.params, name: value})
    return replace(features, modules=modules)


def discover(package: str = DETECTOR_PACKAGE) -> dict[str, type[BaseDetector]]:
    """Every concrete BaseDetector subclass in the package's modules, by module_id."""
    found: dict[str, type[BaseDetector]] = {}
    root = importlib.import_module(package)
    for info in pkgutil.iter_modules(root.__path__, prefix=f"{package}."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseDetector) and not inspect.isabstract(cls):
                other = found.get(cls.module_id)
                if other is not None and other is not cls:
                    raise ModuleConfigError(
                        f"module id {cls.module_id} is claimed by {other.__name__} and "
                        f"{cls.__name__}"
                    )
                found[cls.module_id] = cls
    return found


class ModuleRegistry:
    """The configured detectors, instantiated and configured at start (bad entries fail here)."""

    def __init__(
        self, features: Features, classes: Mapping[str, type[BaseDetector]] | None = None
    ) -> None:
        self.features = features
        self.classes = dict(classes if classes is not None else discover())
        unknown = sorted(set(features.modules) - set(self.classes))
        if unknown:
            raise ModuleConfigError(
                f"{features.source}: unknown module(s) {unknown}; known: {sorted(self.classes)}"
            )
        self._enabled: dict[str, BaseDetector] = {}
        for module_id, entry in features.modules.items():
            if not entry.enabled:
                continue
            detector = self.classes[module_id]()
            try:
                detector.configure(entry.params)
            except ModuleConfigError as exc:
                raise ModuleConfigError(f"{features.source}: {exc}") from None
            self._enabled[module_id] = detector

    def enabled(self) -> list[BaseDetector]:
        return list(self._enabled.values())

    def get(self, module_id: str) -> BaseDetector:
        """The configured detector; a clear error when it is unknown or disabled."""
        if module_id not in self.classes:
            raise ModuleConfigError(f"unknown module {module_id}; known: {sorted(self.classes)}")
        if module_id not in self._enabled:
            raise ModuleConfigError(f"module {module_id} is disabled in {self.features.source}")
        return self._enabled[module_id]

    def by_job(self, job_name: str) -> BaseDetector:
        for detector in self._enabled.values():
            if detector.job_name == job_name:
                return detector
        raise ModuleConfigError(f"no enabled module runs job {job_name!r}")


def load_registry(
    path: Path | str = DEFAULT_FEATURES,
    ssm: SSMClient | Callable[[], SSMClient] | None = None,
    classes: Mapping[str, type[BaseDetector]] | None = None,
) -> ModuleRegistry:
    """The registry from the features file, overlaid from SSM when the file names a prefix
    (`ssm` is a client or a factory called only then)."""
    features = load_features(path)
    if ssm is not None and features.ssm_prefix:
        features = overlay_ssm(features, ssm() if callable(ssm) else ssm)
    return ModuleRegistry(features, classes)
