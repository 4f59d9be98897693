"""`python -m deploy package | submit | policy`: build the EMR package, start a job, render IAM."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from deploy.errors import DeployError
from deploy.iam import policy_names, policy_text, render_policy
from deploy.jobs import JOBS, job_named
from deploy.package import (
    DEFAULT_BUILD_DIR,
    DEFAULT_PLATFORM,
    DEFAULT_PYTHON_PREFIX,
    build_package,
    load_manifest,
)
from deploy.settings import load_settings

log = logging.getLogger("deploy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    package = commands.add_parser("package", help="build what EMR Serverless runs into build/emr")
    package.add_argument(
        "--deps",
        choices=["image", "archive"],
        default="image",
        help="Python dependencies: custom image context (default, offline) or venv-pack archive",
    )
    package.add_argument("--out", type=Path, default=DEFAULT_BUILD_DIR)
    package.add_argument("--platform", default=DEFAULT_PLATFORM, help="archive wheels' platform")
    package.add_argument(
        "--python-prefix", default=DEFAULT_PYTHON_PREFIX, help="archive's interpreter prefix"
    )

    submit = commands.add_parser("submit", help="upload the package and start a job run")
    submit.add_argument("--job", required=True, choices=sorted(JOBS))
    submit.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD_DIR)
    submit.add_argument(
        "--dry-run", action="store_true", help="print the StartJobRun request, call nothing"
    )
    submit.add_argument("arguments", nargs="*", help="entry point arguments (after --)")

    policy = commands.add_parser("policy", help="print an IAM policy with its placeholders filled")
    policy.add_argument("name", choices=policy_names())
    policy.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="a placeholder's value"
    )

    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        if args.command == "package":
            return run_package(args)
        if args.command == "submit":
            return run_submit(args)
        return run_policy(args)
    except DeployError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def run_package(args: argparse.Namespace) -> int:
    manifest = build_package(
        out=args.out, deps=args.deps, platform=args.platform, python_prefix=args.python_prefix
    )
    print(f"package {manifest.build_id} in {args.out} ({manifest.python_deps} dependencies)")
    for name, artifact in sorted(manifest.artifacts.items()):
        print(f"  {name:32} {artifact.bytes:>12,} bytes")
    if manifest.missing_jobs:
        print(f"  not written yet: {', '.join(manifest.missing_jobs)}")
    if manifest.python_deps == "image":
        print(f"  custom image context: {args.out / 'image'} (deploy/README.md: build and push)")
    return 0


def run_submit(args: argparse.Namespace) -> int:
    from deploy.emr import clients, start_job_run_request, submit

    settings = load_settings()
    log.info("deploy settings: %s", settings.masked())
    manifest = load_manifest(args.build_dir)
    job = job_named(args.job)
    if args.dry_run:
        request = start_job_run_request(settings, manifest, job, "dry-run", args.arguments)
        print(json.dumps(request, indent=2))
        return 0
    emr, s3 = clients(settings)
    result = submit(settings, manifest, job, args.build_dir, emr, s3, args.arguments)
    print(json.dumps(result.to_json()))
    return 0


def run_policy(args: argparse.Namespace) -> int:
    values = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep:
            raise DeployError(f"--set {item!r}: expected NAME=VALUE")
        values[name] = value
    print(json.dumps(render_policy(policy_text(args.name), values), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
