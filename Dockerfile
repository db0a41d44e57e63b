# The AI worker: `python -m worker run`, installed from its wheel (runtime dependencies only), non-root.
# Checked by hadolint in `make test`; no Docker engine runs where this repository is developed, so the
# image is not built here (the wheel it installs is built and installed by tests/processes/test_packaging.py).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY worker/ ./worker/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WORKER_OPS_HOST=0.0.0.0 \
    WORKER_OPS_PORT=3005
# The wheel carries worker/sql/queries.sql as package data; pip resolves [project].dependencies.
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels

# The worker's working directory: it reads a `.env` here if one is mounted (docs/deployment.md,
# "Configuration"); the image itself ships none (.dockerignore).
WORKDIR /app
# A numeric user, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001

# GET /health (liveness), /ready (readiness), /metrics (worker/ops.py).
EXPOSE 3005
# Liveness: /health fails only when a restart helps (the consume loop is dead or the event loop is
# stuck). A database outage makes /ready fail instead, and restarting would not fix that.
# slim has no curl: the standard library asks (exit 1 on a refused connection or HTTP 503).
HEALTHCHECK --interval=15s --timeout=5s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('WORKER_OPS_PORT', '3005') + '/health', timeout=3)"]

# SIGTERM: the worker stops reading, finishes jobs in flight for WORKER_SHUTDOWN_GRACE_SECONDS (30 s by
# default) and leaves the rest for redelivery; a second SIGTERM stops it at once. Give it longer than the
# grace before SIGKILL (docker stop -t 40, compose stop_grace_period, Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
CMD ["python", "-m", "worker", "run"]
