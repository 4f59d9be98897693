"""Deployment to AWS (SPEC §9): the EMR Serverless package and job submission, IAM policies.

Boundaries: `jobs`, `settings`, `iam` and the request builders of `emr` are pure; `package`
touches only the file system (and pip/venv-pack for the dependency archive); boto3 lives in the
adapter half of `emr`, with clients created in `__main__`. Nothing here imports `devstack`, and
nothing imports pyspark: the deployer runs without Spark.
"""
