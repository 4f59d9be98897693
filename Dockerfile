# The producer image: slim Python, non-root, exec-form CMD (PID 1 receives SIGTERM), HEALTHCHECK.
# No pyspark: the image installs requirements.txt only.
# Build: docker build -t crypto-pulse-producer .   (podman/buildah: see README)
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PRODUCER_HEALTH_PORT=8080

WORKDIR /app

# A wheelhouse built on the host (wheels/) is used when present, for builds without an index.
# (`wheel[s]` matches nothing when there is no wheelhouse, which COPY accepts beside a real file.)
COPY requirements.txt wheel[s] /tmp/build/
RUN python3 -m venv /opt/venv \
    && if ls /tmp/build/*.whl >/dev/null 2>&1; then \
        /opt/venv/bin/pip install --no-index --find-links /tmp/build -r /tmp/build/requirements.txt; \
    else \
        /opt/venv/bin/pip install -r /tmp/build/requirements.txt; \
    fi \
    && rm -rf /tmp/build \
    && useradd --system --uid 10001 --no-create-home producer

COPY producer/ ./producer/

ENV PATH=/opt/venv/bin:$PATH
USER 10001
EXPOSE 8080

HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PRODUCER_HEALTH_PORT', '8080'), timeout=2)"]

ENTRYPOINT ["python3", "-m", "producer"]
CMD ["run"]
