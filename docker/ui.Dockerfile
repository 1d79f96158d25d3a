# Lightning OS UI image. Targets: `local` and `azure`, the same packages and differing only in
# LIGHTNING_MODE: the UI talks to the API over HTTP and needs neither storage nor bus
# (lightning_core.topology.SERVICES), so no target installs a provider SDK. `builder` and
# `runtime` are named contexts: the stages of docker/python.Dockerfile. Build from the
# repository root, e.g.
#   docker buildx bake -f docker/docker-bake.hcl ui-local
# No `# syntax=` line on purpose (see docker/python.Dockerfile). hadolint reads one file, so
# it takes the named contexts for untagged images:
# hadolint global ignore=DL3006

# ---- dependency layer: third-party packages only, exactly as locked -----------------------
# No --extra: lightning-core's extras are the provider SDKs, which the UI never imports.
FROM builder AS deps
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    uv-sync --no-install-workspace --package lightning-ui

# ---- code last: the workspace members, installed as wheels (not editable) -----------------
FROM deps AS app
WORKDIR /src
COPY libs/lightning-core/src libs/lightning-core/src
COPY services/ui/src services/ui/src
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    uv-sync --no-editable --package lightning-ui

# ---- the service on the shared non-root runtime ------------------------------------------
FROM runtime AS service
COPY --from=app /opt/venv /opt/venv
ENV SERVICE_TYPE=ui \
    LIGHTNING_UI_PORT=8080
EXPOSE 8080
# Python stdlib, not curl: slim images have no curl. Python reads LIGHTNING_UI_PORT itself, so the
# exec form (no shell) still follows a changed port.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('LIGHTNING_UI_PORT', '8080') + '/healthz', timeout=4)"]
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
FROM service AS azure
ENV LIGHTNING_MODE=azure

# Last stage: a build without --target gets the local image.
FROM service AS local
ENV LIGHTNING_MODE=local
