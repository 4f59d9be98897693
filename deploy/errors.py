"""The deployer's exception hierarchy: one root, specific subclasses under it."""


class DeployError(Exception):
    """Root of every error the deployer raises on purpose; `python -m deploy` exits 2 on it."""


class DeploySettingsError(DeployError):
    """The EMR_* environment is invalid; the message names the variable."""


class PackageError(DeployError):
    """The package could not be built (or is missing or stale when submitting)."""


class SubmitError(DeployError):
    """Uploading the artifacts or starting the job run failed (AWS errors translated here)."""


class PolicyError(DeployError):
    """An IAM policy document could not be rendered (unknown or missing placeholder)."""
