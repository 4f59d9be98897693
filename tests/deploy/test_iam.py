"""The IAM policies grant exactly what the code calls, on exactly our resources.

For each principal: the AWS operations its code makes (found by reading the code: see
`aws_calls`), plus the ones made on its behalf by code the scan does not read (listed below,
each with where it comes from), must each be granted; and the policy grants no other action.
Then the grants are checked on real ARNs: built from the same names the request builder and the
job configuration use, allowed where they must be and refused next door.
"""

from __future__ import annotations

import ast
import fnmatch
import inspect
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyiceberg.catalog
import pytest
import yaml

from deploy.emr import job_environment, start_job_run_request
from deploy.iam import POLICY_DIR, placeholders, policy_names, policy_text, render_policy
from deploy.jobs import job_named
from deploy.package import Manifest
from deploy.settings import DeploySettings
from spark_jobs.common.kinesis_source import read_stream
from tests.deploy import aws_calls
from tests.deploy.conftest import ACCOUNT_ID, ROOT

PIPELINE = yaml.safe_load((ROOT / "config" / "pipeline.yaml").read_text())

# Principal (policy document) -> the packages whose code runs as it.
PRINCIPALS = {
    "producer-task-policy": ("producer",),
    "job-execution-policy": ("spark_jobs",),
    "deployer-policy": ("deploy",),
}

# Operations made on a principal's behalf by code the scan does not read.
ON_BEHALF = {
    "job-execution-policy": {
        # The aws-kinesis connector (JVM, on EMR): kinesis_source.read_stream's docstring.
        ("kinesis", "DescribeStreamSummary"),
        ("kinesis", "ListShards"),
        ("kinesis", "GetShardIterator"),
        ("kinesis", "GetRecords"),
        # pyiceberg's Glue catalog, for what the jobs do with it: create_namespace (CreateDatabase),
        # create_table (GetDatabase for the location, CreateTable), load_table (GetTable),
        # commits (GetTable, UpdateTable), purge_table of the schema evolution demo (DeleteTable).
        ("glue", "CreateDatabase"),
        ("glue", "GetDatabase"),
        ("glue", "CreateTable"),
        ("glue", "GetTable"),
        ("glue", "UpdateTable"),
        ("glue", "DeleteTable"),
        # pyarrow's S3 file system (pyiceberg's FileIO, the raw zone) and Spark's S3 checkpoints:
        # read, write, delete objects; list prefixes; HeadBucket before creating "directories".
        ("s3", "GetObject"),
        ("s3", "HeadObject"),
        ("s3", "PutObject"),
        ("s3", "DeleteObject"),
        ("s3", "ListObjectsV2"),
        ("s3", "HeadBucket"),
        # EMR Serverless itself, as the job role: job logs to CloudWatch Logs.
        ("logs", "DescribeLogGroups"),
        ("logs", "CreateLogStream"),
        ("logs", "DescribeLogStreams"),
        ("logs", "PutLogEvents"),
    },
    # StartJobRun hands the job role to EMR Serverless.
    "deployer-policy": {("iam", "PassRole")},
}

# Actions that take no resource narrower than "*"; each must carry the listed condition key.
RESOURCE_STAR = {"cloudwatch:PutMetricData": "cloudwatch:namespace"}

# Receivers that look like AWS operations by name but are not boto3 clients.
NOT_BOTO = {
    r"^(self\.)?(table|catalog|output)$": "pyiceberg Table/Catalog (its Glue/S3 calls: ON_BEHALF)",
    r"^tables\[.*\]$": "pyiceberg Tables",
    r"^self\.api$": "kinesis_source.KinesisApi, a wrapper whose client calls are scanned",
}

# IAM's names where they are not the operation's own.
IAM_ACTION_OF = {
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "HeadBucket"): "s3:ListBucket",
}


def iam_action(service: str, operation: str) -> str:
    return IAM_ACTION_OF.get((service, operation), f"{service}:{operation}")


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def granted_actions(policy: Mapping[str, Any]) -> set[str]:
    return {action for st in policy["Statement"] for action in as_list(st["Action"])}


def allows(
    policy: Mapping[str, Any],
    action: str,
    resource: str,
    context: Mapping[str, str] | None = None,
) -> bool:
    """IAM's answer for one request, for the subset of the grammar these documents use."""
    context = context or {}
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow"
        if action not in as_list(statement["Action"]):
            continue
        if not any(fnmatch.fnmatchcase(resource, p) for p in as_list(statement["Resource"])):
            continue
        if all(
            _condition(operator, key, as_list(values), context)
            for operator, conditions in statement.get("Condition", {}).items()
            for key, values in conditions.items()
        ):
            return True
    return False


def _condition(operator: str, key: str, values: list[str], context: Mapping[str, str]) -> bool:
    if_exists = operator.endswith("IfExists")
    operator = operator.removesuffix("IfExists")
    if key not in context:
        return if_exists
    actual = context[key]
    if operator == "StringEquals":
        return actual in values
    if operator in ("StringLike", "ArnLike"):
        return any(fnmatch.fnmatchcase(actual, value) for value in values)
    raise AssertionError(f"condition operator {operator} not understood by this test")


# --- Names ---------------------------------------------------------------------------------------


@pytest.fixture
def names(settings: DeploySettings) -> dict[str, str]:
    """Every placeholder's value: from the deploy settings and config/pipeline.yaml."""
    role = settings.execution_role_arn
    return {
        "ACCOUNT_ID": role.split(":")[4],
        "REGION": settings.region,
        "STREAM": PIPELINE["stream"]["name"],
        "ALERTS_TABLE": PIPELINE["alerts"]["dynamodb_table"],
        "SSM_PREFIX": "/crypto-pulse/features",
        "GLUE_DATABASE": PIPELINE["tables"]["namespace"],
        "DATA_BUCKET": settings.data_bucket,
        "ARTIFACTS_BUCKET": settings.artifacts_bucket,
        "ARTIFACTS_PREFIX": settings.artifacts_prefix,
        "LOGS_PREFIX": settings.logs_prefix,
        "LOG_GROUP": settings.log_group,
        "APPLICATION_ID": settings.application_id,
        "JOB_ROLE_NAME": role.rsplit("/", 1)[1],
    }


@pytest.fixture
def policies(names: dict[str, str]) -> dict[str, dict[str, Any]]:
    return {name: render_policy(policy_text(name), names) for name in policy_names()}


# --- The documents -------------------------------------------------------------------------------


def test_the_documents() -> None:
    assert policy_names() == [
        "deployer-policy",
        "job-execution-policy",
        "job-execution-trust",
        "producer-task-policy",
        "producer-task-trust",
    ]


@pytest.mark.parametrize("name", sorted(p.stem for p in POLICY_DIR.glob("*.json")))
def test_document_shape(name: str, names: dict[str, str]) -> None:
    text = policy_text(name)
    document = json.loads(text)  # valid JSON before rendering, too
    assert document["Version"] == "2012-10-17"
    sids = [statement["Sid"] for statement in document["Statement"]]
    assert len(sids) == len(set(sids))
    assert placeholders(text) <= set(names)
    for statement in render_policy(text, names)["Statement"]:
        assert statement["Effect"] == "Allow"
        actions = as_list(statement["Action"])
        assert actions == sorted(actions)
        assert not [a for a in actions if "*" in a or "?" in a], f"{name}: wildcard action"
        if name.endswith("-trust"):
            assert actions == ["sts:AssumeRole"]
            assert "aws:SourceAccount" in statement["Condition"]["StringEquals"]
            continue
        resources = as_list(statement["Resource"])
        if "*" in resources:
            assert resources == ["*"]
            assert actions == [a for a in actions if a in RESOURCE_STAR], (
                f"{name}: Resource * for {actions}"
            )
            for action in actions:
                assert RESOURCE_STAR[action] in json.dumps(statement["Condition"])
        for resource in resources:
            assert resource == "*" or resource.startswith("arn:aws:")
            assert "${" not in resource


def test_render_refuses_missing_and_odd_values(names: dict[str, str]) -> None:
    from deploy.errors import PolicyError

    with pytest.raises(PolicyError, match="missing values for ACCOUNT_ID, REGION, STREAM"):
        render_policy(policy_text("producer-task-policy"), {})
    with pytest.raises(PolicyError, match="STREAM='a\"b': not a name"):
        render_policy(policy_text("producer-task-policy"), {**names, "STREAM": 'a"b'})


# --- What the code calls -------------------------------------------------------------------------


def scanned(packages: Iterable[str]) -> aws_calls.ScanResult:
    return aws_calls.scan(ROOT, packages)


@pytest.mark.parametrize("principal", sorted(PRINCIPALS))
def test_every_call_is_typed_or_known_not_to_be_aws(principal: str) -> None:
    result = scanned(PRINCIPALS[principal])
    assert result.calls, "the scan found no AWS call: the scanner is broken"
    strangers = [
        f"{u.path}:{u.line} {u.receiver}.{u.method}"
        for u in result.unresolved
        if not any(re.match(pattern, u.receiver) for pattern in NOT_BOTO)
    ]
    assert not strangers, (
        "calls named like AWS operations on receivers the scan cannot type: annotate the client "
        f"(boto3-stubs) or add the receiver to NOT_BOTO with a reason: {strangers}"
    )


@pytest.mark.parametrize("principal", sorted(PRINCIPALS))
def test_policy_grants_exactly_the_calls(
    principal: str, policies: dict[str, dict[str, Any]]
) -> None:
    calls = scanned(PRINCIPALS[principal]).operations() | ON_BEHALF.get(principal, set())
    needed = {iam_action(service, operation) for service, operation in calls}
    granted = granted_actions(policies[principal])
    assert not needed - granted, f"{principal} lacks {sorted(needed - granted)}"
    assert not granted - needed, (
        f"{principal} grants more than is called: {sorted(granted - needed)}"
    )


def test_the_scan_finds_the_known_calls() -> None:
    """A check of the scanner itself against calls read by eye."""
    assert scanned(["producer"]).operations() == {
        ("kinesis", "PutRecords"),
        ("kinesis", "DescribeStreamSummary"),
    }
    jobs = scanned(["spark_jobs"]).operations()
    assert {
        ("kinesis", "ListShards"),  # passed to functools.partial, not called in place
        ("kinesis", "GetRecords"),
        ("dynamodb", "PutItem"),
        ("cloudwatch", "PutMetricData"),
        ("ssm", "GetParametersByPath"),  # through a paginator
        ("s3", "PutObject"),
    } <= jobs
    assert scanned(["deploy"]).operations() == {
        ("emr-serverless", "GetApplication"),
        ("emr-serverless", "ListJobRuns"),
        ("emr-serverless", "StartJobRun"),
        ("s3", "PutObject"),
    }


def test_the_scan_notices_an_untyped_client(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "m.py").write_text(
        "import boto3\n"
        "def f(dynamodb, settings):\n"
        "    dynamodb.delete_item(TableName='t', Key={})\n"
        "    boto3.client('sqs').send_message(QueueUrl='q', MessageBody='b')\n"
    )
    result = aws_calls.scan(tmp_path, ["pkg"])
    assert result.operations() == {("sqs", "SendMessage")}
    assert [(u.receiver, u.method) for u in result.unresolved] == [("dynamodb", "delete_item")]


def test_the_on_behalf_calls_are_where_they_are_said_to_be() -> None:
    """The connector's operations are the ones read_stream documents; pyiceberg's Glue catalog
    does make the Glue calls listed (so an upgrade that changes them is noticed)."""
    doc = inspect.getdoc(read_stream) or ""
    for operation in ("DescribeStreamSummary", "ListShards", "GetShardIterator", "GetRecords"):
        assert operation in doc
    site = Path(pyiceberg.catalog.__file__).parents[2]
    glue = {
        operation
        for service, operation in aws_calls.scan(site, ["pyiceberg/catalog"]).operations()
        if service == "glue"
    }
    listed = {op for service, op in ON_BEHALF["job-execution-policy"] if service == "glue"}
    assert listed <= glue


def test_the_demo_table_the_job_may_drop_is_the_demo_jobs() -> None:
    source = (ROOT / "spark_jobs" / "batch" / "schema_evolution_demo.py").read_text()
    constants = {
        node.targets[0].id: node.value.value
        for node in ast.parse(source).body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and isinstance(node.value, ast.Constant)
    }
    assert constants["JOB"] == "schema_evolution_demo"
    assert "table/${GLUE_DATABASE}/schema_evolution_demo" in policy_text("job-execution-policy")


# --- On real names -------------------------------------------------------------------------------


def test_producer_task(policies: dict[str, dict[str, Any]], names: dict[str, str]) -> None:
    policy = policies["producer-task-policy"]
    stream = f"arn:aws:kinesis:us-east-1:{ACCOUNT_ID}:stream/{names['STREAM']}"
    assert allows(policy, "kinesis:PutRecords", stream)
    assert allows(policy, "kinesis:DescribeStreamSummary", stream)
    assert not allows(policy, "kinesis:PutRecords", f"{stream}-other")
    assert not allows(policy, "kinesis:GetRecords", stream)
    assert not allows(policy, "kinesis:PutRecords", stream.replace("us-east-1", "eu-west-1"))


def test_job_role_on_the_names_the_job_uses(
    policies: dict[str, dict[str, Any]],
    names: dict[str, str],
    settings: DeploySettings,
    manifest: Manifest,
) -> None:
    policy = policies["job-execution-policy"]
    region, account = "us-east-1", ACCOUNT_ID
    env = job_environment(settings)
    request = start_job_run_request(settings, manifest, job_named("volume_anomaly"), "t")

    def s3_object(uri: str) -> str:
        return "arn:aws:s3:::" + uri.removeprefix("s3://")

    def key_prefix(uri: str) -> str:
        return uri.removeprefix("s3://").split("/", 1)[1]

    # Kinesis: the connector's reads on our stream only.
    stream = f"arn:aws:kinesis:{region}:{account}:stream/{names['STREAM']}"
    for action in ("GetRecords", "GetShardIterator", "ListShards", "DescribeStreamSummary"):
        assert allows(policy, f"kinesis:{action}", stream)
    assert not allows(policy, "kinesis:GetRecords", f"{stream}-other")
    assert not allows(policy, "kinesis:PutRecords", stream)

    # DynamoDB: conditional puts into the alerts table.
    table = f"arn:aws:dynamodb:{region}:{account}:table/{names['ALERTS_TABLE']}"
    assert allows(policy, "dynamodb:PutItem", table)
    assert not allows(policy, "dynamodb:PutItem", f"{table}-other")
    assert not allows(policy, "dynamodb:DeleteItem", table)

    # CloudWatch: only our namespaces (the ones config/pipeline.yaml names).
    for namespace in (
        PIPELINE["metrics"]["quality_namespace"],
        PIPELINE["metrics"]["streaming_namespace"],
    ):
        assert allows(policy, "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": namespace})
    assert not allows(policy, "cloudwatch:PutMetricData", "*", {"cloudwatch:namespace": "AWS/EC2"})
    assert not allows(policy, "cloudwatch:PutMetricData", "*")

    # SSM: the features prefix, recursively.
    parameter = f"arn:aws:ssm:{region}:{account}:parameter{names['SSM_PREFIX']}"
    assert allows(policy, "ssm:GetParametersByPath", parameter)
    assert allows(policy, "ssm:GetParametersByPath", f"{parameter}/MOD-001")
    assert not allows(
        policy, "ssm:GetParametersByPath", f"arn:aws:ssm:{region}:{account}:parameter/prod"
    )

    # Glue: our database and its tables; DeleteTable only on the demo's table.
    database = names["GLUE_DATABASE"]
    glue = f"arn:aws:glue:{region}:{account}"
    for action in ("GetTable", "UpdateTable", "CreateTable"):
        assert allows(policy, f"glue:{action}", f"{glue}:table/{database}/raw_trades")
    assert allows(policy, "glue:CreateDatabase", f"{glue}:database/{database}")
    assert not allows(policy, "glue:GetTable", f"{glue}:table/other_db/raw_trades")
    assert allows(policy, "glue:DeleteTable", f"{glue}:table/{database}/schema_evolution_demo")
    assert not allows(policy, "glue:DeleteTable", f"{glue}:table/{database}/raw_trades")

    # S3 data: under the checkpoint root, raw zone and warehouse the request sets, nowhere else.
    data_roots = [
        env["CRYPTO_PULSE_STREAMING__CHECKPOINT_ROOT"],
        env["CRYPTO_PULSE_RAW_ZONE"],
        env["PYICEBERG_CATALOG__CRYPTO_PULSE__WAREHOUSE"],
    ]
    for root in data_roots:
        for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
            assert allows(policy, action, s3_object(f"{root}/volume_anomaly/x/1"))
        assert allows(
            policy,
            "s3:ListBucket",
            f"arn:aws:s3:::{settings.data_bucket}",
            {"s3:prefix": f"{key_prefix(root)}/volume_anomaly/"},
        )
    bucket = f"arn:aws:s3:::{settings.data_bucket}"
    assert allows(policy, "s3:ListBucket", bucket)  # HeadBucket carries no prefix
    assert not allows(policy, "s3:ListBucket", bucket, {"s3:prefix": "other/"})
    assert not allows(policy, "s3:PutObject", f"{bucket}/other/x")

    # Artifacts: read what the request names; never write or delete them.
    spark_submit = request["jobDriver"]["sparkSubmit"]
    artifacts = [
        spark_submit["entryPoint"],
        *re.findall(r"s3://[^\s,#]+", spark_submit["sparkSubmitParameters"]),
    ]
    artifacts = [uri for uri in artifacts if uri.startswith(f"s3://{settings.artifacts_bucket}/")]
    assert len(artifacts) >= 3
    for uri in artifacts:
        assert allows(policy, "s3:GetObject", s3_object(uri))
        assert not allows(policy, "s3:PutObject", s3_object(uri))
        assert not allows(policy, "s3:DeleteObject", s3_object(uri))

    # Logs: to the S3 log URI and the CloudWatch log group the request names.
    monitoring = request["configurationOverrides"]["monitoringConfiguration"]
    log_uri = monitoring["s3MonitoringConfiguration"]["logUri"]
    assert allows(policy, "s3:PutObject", s3_object(f"{log_uri}applications/x/jobs/y/stdout.gz"))
    group = monitoring["cloudWatchLoggingConfiguration"]["logGroupName"]
    stream_arn = f"arn:aws:logs:{region}:{account}:log-group:{group}:log-stream:crypto-pulse/x"
    for action in ("logs:PutLogEvents", "logs:CreateLogStream", "logs:DescribeLogStreams"):
        assert allows(policy, action, stream_arn)
    assert not allows(
        policy, "logs:PutLogEvents", f"arn:aws:logs:{region}:{account}:log-group:other:log-stream:x"
    )


def test_deployer(
    policies: dict[str, dict[str, Any]],
    names: dict[str, str],
    settings: DeploySettings,
    manifest: Manifest,
) -> None:
    policy = policies["deployer-policy"]
    application = (
        f"arn:aws:emr-serverless:us-east-1:{ACCOUNT_ID}:/applications/{settings.application_id}"
    )
    for action in ("StartJobRun", "GetApplication", "ListJobRuns"):
        assert allows(policy, f"emr-serverless:{action}", application)
    assert not allows(policy, "emr-serverless:StartJobRun", f"{application}x")
    passed = {"iam:PassedToService": "emr-serverless.amazonaws.com"}
    assert allows(policy, "iam:PassRole", settings.execution_role_arn, passed)
    assert not allows(
        policy,
        "iam:PassRole",
        settings.execution_role_arn,
        {"iam:PassedToService": "ec2.amazonaws.com"},
    )
    assert not allows(policy, "iam:PassRole", f"{settings.execution_role_arn}-admin", passed)
    artifacts = f"arn:aws:s3:::{settings.artifacts_bucket}/{settings.artifacts_prefix}"
    key = f"{artifacts}/{manifest.build_id}/crypto_pulse.zip"
    assert allows(policy, "s3:PutObject", key)
    assert not allows(policy, "s3:PutObject", f"arn:aws:s3:::{settings.data_bucket}/raw/x")


def test_trust_policies(policies: dict[str, dict[str, Any]]) -> None:
    job = policies["job-execution-trust"]["Statement"][0]
    assert job["Principal"] == {"Service": "emr-serverless.amazonaws.com"}
    assert job["Condition"]["ArnLike"]["aws:SourceArn"] == (
        f"arn:aws:emr-serverless:us-east-1:{ACCOUNT_ID}:/applications/*"
    )
    task = policies["producer-task-trust"]["Statement"][0]
    assert task["Principal"] == {"Service": "ecs-tasks.amazonaws.com"}
