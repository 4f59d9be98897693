# The EMR Serverless custom image of the Spark jobs (deploy/README.md): the EMR runtime (Spark
# 4.0.x with its own pyspark and py4j) + CPython 3.11 + the jobs' pinned Python dependencies.
# Build context: build/emr/image/ (`make package` writes requirements-emr.txt and
# constraints-emr.txt there, pyspark and py4j left out).
ARG EMR_BASE_IMAGE=public.ecr.aws/emr-serverless/spark/emr-spark-8.0.0:latest
FROM ${EMR_BASE_IMAGE}

# hadolint ignore=DL3066
USER root

# The jobs need Python 3.11 (the version they are tested with); Amazon Linux 2023, the base of
# the EMR images, packages it beside its system python3. Versions follow the base image's repo.
# hadolint ignore=DL3041
RUN dnf install -y python3.11 python3.11-pip && dnf clean all

COPY requirements-emr.txt constraints-emr.txt /opt/crypto-pulse/
RUN python3.11 -m pip install --no-cache-dir \
        -r /opt/crypto-pulse/requirements-emr.txt -c /opt/crypto-pulse/constraints-emr.txt \
    && if python3.11 -m pip show --quiet pyspark 2>/dev/null; then \
        echo "pyspark must come from the EMR runtime, not pip" >&2; exit 1; fi

# The driver and executors run this interpreter (the job run also sets PYSPARK_PYTHON).
ENV PYSPARK_PYTHON=/usr/bin/python3.11 \
    PYSPARK_DRIVER_PYTHON=/usr/bin/python3.11

# EMR Serverless requires the image to end as the user hadoop (by name).
# hadolint ignore=DL3066
USER hadoop:hadoop
