# The AI worker: `python -m worker run`, runtime dependencies only, as a non-root user.
# Checked by reading and by running the same pip steps in a throwaway venv; no Docker engine runs where
# this repository is developed, so this file has not been built here.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WORKER_OPS_HOST=0.0.0.0 \
    WORKER_OPS_PORT=3005

WORKDIR /app

# Dependencies in their own layer: [project].dependencies of pyproject.toml, never the dev extras.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
      > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The worker runs from source in /app: worker/db.py reads ../sql/worker_queries.sql next to the package,
# which an install into site-packages would not carry.
COPY worker/ ./worker/
COPY sql/worker_queries.sql ./sql/worker_queries.sql

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin worker
USER worker

# GET /health, /ready, /metrics (worker/ops.py).
EXPOSE 3005
# slim has no curl: ask /health with the standard library (exit 1 on a refused connection or HTTP 503).
HEALTHCHECK --interval=15s --timeout=5s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('WORKER_OPS_PORT', '3005') + '/health', timeout=3)"]

# SIGTERM: the worker stops reading, finishes jobs in flight for WORKER_SHUTDOWN_GRACE_SECONDS (20 s by
# default) and leaves the rest for redelivery. Give it longer than that before SIGKILL
# (docker stop -t 30, compose stop_grace_period, Kubernetes terminationGracePeriodSeconds).
STOPSIGNAL SIGTERM
CMD ["python", "-m", "worker", "run"]
