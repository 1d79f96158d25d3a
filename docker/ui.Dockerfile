# Lightning OS UI image. Targets: `local` and `azure`, the same packages and differing only in
# LIGHTNING_MODE: the UI talks to the API over HTTP and needs neither storage nor bus
# (lightning_core.topology.SERVICES), so no target installs a provider SDK. Build from the
# repository root, e.g.
#   docker buildx bake -f docker/docker-bake.hcl ui-local
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

# ---- builder: uv and the workspace manifests ----------------------------------------------
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

# ---- dependency layer: third-party packages only, exactly as locked -----------------------
# `uv sync --locked` rather than `uv export | pip install`: one tool reads the lock, fails if
# the lock is stale, and the second sync below installs the members without re-resolving.
# No --extra: lightning-core's extras are the provider SDKs, which the UI never imports.
FROM builder AS deps
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    if [ -s /run/secrets/ca.crt ]; then export SSL_CERT_FILE=/run/secrets/ca.crt; fi \
    && /opt/uv/bin/uv sync --locked --no-dev --no-install-workspace --package lightning-ui

# ---- code last: the workspace members, installed as wheels (not editable) -----------------
FROM deps AS app
COPY libs/lightning-core/src libs/lightning-core/src
COPY services/ui/src services/ui/src
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    if [ -s /run/secrets/ca.crt ]; then export SSL_CERT_FILE=/run/secrets/ca.crt; fi \
    && /opt/uv/bin/uv sync --locked --no-dev --no-editable --package lightning-ui

# ---- runtime: no uv, no sources, no build tools; a non-root user -------------------------
FROM base AS runtime
RUN groupadd --system --gid 10001 lightning \
    && useradd --system --uid 10001 --gid lightning --home-dir /var/lib/lightning \
        --create-home --shell /usr/sbin/nologin lightning
WORKDIR /var/lib/lightning
COPY --from=app /opt/venv /opt/venv
# Listen on every interface: the port is published by the engine, not by the app.
ENV SERVICE_TYPE=ui \
    LIGHTNING_HOST=0.0.0.0 \
    LIGHTNING_UI_PORT=8080
EXPOSE 8080
# Python stdlib, not curl: slim images have no curl. Python reads LIGHTNING_UI_PORT itself, so the
# exec form (no shell) still follows a changed port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('LIGHTNING_UI_PORT', '8080') + '/healthz', timeout=4)"]
# Numeric, so runtimes (e.g. Kubernetes runAsNonRoot) can verify it is not root.
USER 10001:10001
ENTRYPOINT ["python", "-m", "lightning_core.runtime"]
# Metadata last: a new REVISION per commit then invalidates no RUN step above.
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="lightning-ui" \
      org.opencontainers.image.description="Lightning OS web UI: server-rendered pages reading from the API" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.vendor="Lightning OS"

# The two targets differ only in LIGHTNING_MODE (which picks the UI's sign-in); both are kept
# so every service builds the same bake targets and deploys the same way.
FROM runtime AS azure
ENV LIGHTNING_MODE=azure

# Last stage: a plain `docker build` without --target gets the local image.
FROM runtime AS local
ENV LIGHTNING_MODE=local
