"""The IAM policy documents in `deploy/iam/`, rendered with real names (pure, no AWS calls).

The documents carry placeholders such as `${ACCOUNT_ID}` or `${STREAM}` (upper case, so they
cannot be mistaken for IAM's own `${aws:...}` policy variables); `render_policy` fills them in and
refuses to leave one unfilled.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from deploy.errors import PolicyError

POLICY_DIR = Path(__file__).resolve().parent / "iam"
PLACEHOLDER = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")
_VALUE = re.compile(r"[A-Za-z0-9_.:/+=,@-]+")


def policy_names() -> list[str]:
    """The documents' names (file names without `.json`)."""
    return sorted(path.stem for path in POLICY_DIR.glob("*.json"))


def policy_text(name: str) -> str:
    path = POLICY_DIR / f"{name}.json"
    if not path.is_file():
        raise PolicyError(f"no policy {name!r}; known: {', '.join(policy_names())}")
    return path.read_text()


def placeholders(text: str) -> set[str]:
    return set(PLACEHOLDER.findall(text))


def render_policy(text: str, values: Mapping[str, str]) -> dict[str, Any]:
    """The document with every placeholder replaced; PolicyError names the missing ones."""
    missing = sorted(placeholders(text) - set(values))
    if missing:
        raise PolicyError("missing values for " + ", ".join(missing))
    for name, value in values.items():
        if not _VALUE.fullmatch(value):
            raise PolicyError(f"{name}={value!r}: not a name or ARN part")
    rendered: dict[str, Any] = json.loads(
        PLACEHOLDER.sub(lambda match: values[match.group(1)], text)
    )
    return rendered
