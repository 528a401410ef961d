# rollback-receiver: Flask app under gunicorn, `rollback-receiver serve`.
# Build: docker build -t rollback-receiver .   (checks: docs/deploy.md, "Image")

# --- build: a virtualenv with the package and its dependencies -------------
FROM python:3.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md LICENSE constraints.txt ./
COPY receiver ./receiver
# The runtime dependencies only, at the versions constraints.txt pins (`make constraints`).
RUN pip install --no-cache-dir -c constraints.txt .

# --- runtime ----------------------------------------------------------------
FROM python:3.11-slim-bookworm
# git and ssh for GITOPS_PROVIDER=git (clones over https, ssh or file URLs).
RUN apt-get update \
    && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 rollback \
    && useradd --system --uid 10001 --gid rollback --home-dir /home/rollback --create-home \
       --shell /usr/sbin/nologin rollback \
    && mkdir -p /run/rollback-receiver/metrics \
    && chown -R rollback:rollback /run/rollback-receiver
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8080 \
    PROMETHEUS_MULTIPROC_DIR=/run/rollback-receiver/metrics
USER 10001:10001
WORKDIR /home/rollback
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PORT', '8080') + '/healthz', timeout=2)"]
ENTRYPOINT ["rollback-receiver"]
CMD ["serve"]
