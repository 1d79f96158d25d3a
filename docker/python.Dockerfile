# The stages every Lightning OS image shares. docker-bake.hcl builds `builder` and `runtime`
# as targets _builder and _runtime and hands them to docker/<service>.Dockerfile as the
# named contexts of the same names, so each service Dockerfile keeps only what differs.
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

# ---- builder: uv, its locked sync, and the workspace manifests ----------------------------
FROM base AS builder
# uv comes from the package index (no registry image can be pulled on every host), in its
# own venv because Debian's python3 has no pip and refuses system-wide installs (PEP 668).
# The proxy CA is a build secret: exported only when given, so it never lands in a layer
# and the same file builds on a plain Docker host that has no secret.
RUN --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    if [ -s /run/secrets/ca.crt ]; then export PIP_CERT=/run/secrets/ca.crt; fi \
    && python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check uv==0.13.8
# `uv-sync ARGS` is `uv sync --locked --no-dev ARGS`, trusting the `ca` secret when a RUN
# mounts it: the services' sync steps then differ only in their packages and extras.
# `uv sync --locked` rather than `uv export | pip install`: one tool reads the lock and
# fails if the lock is stale.
RUN printf '%s\n' '#!/bin/sh' 'set -e' \
        'if [ -s /run/secrets/ca.crt ]; then export SSL_CERT_FILE=/run/secrets/ca.crt; fi' \
        'exec /opt/uv/bin/uv sync --locked --no-dev "$@"' >/usr/local/bin/uv-sync \
    && chmod 0755 /usr/local/bin/uv-sync
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

# ---- runtime: no uv, no sources, no build tools; a non-root user -------------------------
FROM base AS runtime
RUN groupadd --system --gid 10001 lightning \
    && useradd --system --uid 10001 --gid lightning --home-dir /var/lib/lightning \
        --create-home --shell /usr/sbin/nologin lightning
WORKDIR /var/lib/lightning
# Listen on every interface: the port is published by the engine, not by the app.
ENV LIGHTNING_HOST=0.0.0.0
# Numeric, so runtimes (e.g. Kubernetes runAsNonRoot) can verify it is not root.
USER 10001:10001
ENTRYPOINT ["python", "-m", "lightning_core.runtime"]
