# Lightning OS event-processor image. Targets: `local` (PostgreSQL/Redis/RabbitMQ SDKs) and `azure`
# (Cosmos DB/Service Bus SDKs). Build from the repository root, e.g.
#   docker buildx bake -f docker/docker-bake.hcl event-processor-local
# No `# syntax=` line on purpose: the built-in Dockerfile frontend of Docker >= 23, BuildKit
# and buildah all support RUN --mount, and pulling docker/dockerfile fails on offline hosts.

# Official python slim by default; CI here passes a debootstrap'ed Debian trixie image.
# Builder and runtime stages share this base because the venv bakes the interpreter path.
ARG PYTHON_IMAGE=python:3.13-slim

FROM ${PYTHON_IMAGE} AS base
# An explicit PATH: a base imported from a rootfs tarball has no PATH in its config.
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# ---- builder: uv and the workspace manifests, shared by both targets ----------------------
FROM base AS builder
# uv comes from the package index (no registry image can be pulled on every host), in its
# own venv because Debian's python3 has no pip and refuses system-wide installs (PEP 668).
# The proxy CA is a build secret: exported only when given, so it never lands in a layer
# and the same file builds on a plain Docker host that has no secret.
RUN --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    if [ -s /run/secrets/ca.crt ]; then export PIP_CERT=/run/secrets/ca.crt; fi \
    && python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check uv==0.13.8
# Copy mode: the uv cache is a cache mount on another filesystem. Never download a Python:
# the venv must use the base image's interpreter.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=python3 \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
# Every workspace manifest: `--locked` checks uv.lock against the whole workspace.
COPY pyproject.toml uv.lock README.md ./
COPY libs/lightning-core/pyproject.toml libs/lightning-core/
COPY services/api/pyproject.toml services/api/
COPY services/event-processor/pyproject.toml services/event-processor/
COPY services/ui/pyproject.toml services/ui/
COPY infra/pyproject.toml infra/
COPY tools/lightning-devtools/pyproject.toml tools/lightning-devtools/

# ---- dependency layers: third-party packages only, exactly as locked ----------------------
# `uv sync --locked` rather than `uv export | pip install`: one tool reads the lock, fails if
# the lock is stale, and the second sync below installs the members without re-resolving.
# Two --package flags because the extras belong to lightning-core, not to the service.
FROM builder AS deps-local
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    if [ -s /run/secrets/ca.crt ]; then export SSL_CERT_FILE=/run/secrets/ca.crt; fi \
    && /opt/uv/bin/uv sync --locked --no-dev --no-install-workspace \
        --package lightning-core --package lightning-processor --extra local

FROM builder AS deps-azure
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    if [ -s /run/secrets/ca.crt ]; then export SSL_CERT_FILE=/run/secrets/ca.crt; fi \
    && /opt/uv/bin/uv sync --locked --no-dev --no-install-workspace \
        --package lightning-core --package lightning-processor --extra azure

# ---- code last: the workspace members, installed as wheels (not editable) -----------------
FROM deps-local AS app-local
COPY libs/lightning-core/src libs/lightning-core/src
COPY services/event-processor/src services/event-processor/src
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    if [ -s /run/secrets/ca.crt ]; then export SSL_CERT_FILE=/run/secrets/ca.crt; fi \
    && /opt/uv/bin/uv sync --locked --no-dev --no-editable \
        --package lightning-core --package lightning-processor --extra local

FROM deps-azure AS app-azure
COPY libs/lightning-core/src libs/lightning-core/src
COPY services/event-processor/src services/event-processor/src
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    if [ -s /run/secrets/ca.crt ]; then export SSL_CERT_FILE=/run/secrets/ca.crt; fi \
    && /opt/uv/bin/uv sync --locked --no-dev --no-editable \
        --package lightning-core --package lightning-processor --extra azure

# ---- runtime: no uv, no sources, no build tools; a non-root user -------------------------
FROM base AS runtime
RUN groupadd --system --gid 10001 lightning \
    && useradd --system --uid 10001 --gid lightning --home-dir /var/lib/lightning \
        --create-home --shell /usr/sbin/nologin lightning
WORKDIR /var/lib/lightning
# No port and so no HEALTHCHECK: the worker only consumes the bus. LIGHTNING_HOST is set
# like every image's so settings read the same everywhere.
ENV SERVICE_TYPE=event-processor \
    LIGHTNING_HOST=0.0.0.0 \
    LIGHTNING_SQLITE_PATH=/var/lib/lightning/data/lightning.db
# Numeric, so runtimes (e.g. Kubernetes runAsNonRoot) can verify it is not root.
USER 10001:10001
ENTRYPOINT ["python", "-m", "lightning_core.runtime"]
# Metadata last: a new REVISION per commit then invalidates no RUN step above.
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="lightning-processor" \
      org.opencontainers.image.description="Lightning OS event processor: consumes the bus and runs drivers" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.vendor="Lightning OS"

FROM runtime AS azure
COPY --from=app-azure /opt/venv /opt/venv
ENV LIGHTNING_MODE=azure

# Last stage: a plain `docker build` without --target gets the local image.
FROM runtime AS local
COPY --from=app-local /opt/venv /opt/venv
ENV LIGHTNING_MODE=local
