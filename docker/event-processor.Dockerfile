# Lightning OS event-processor image. Targets: `local` (PostgreSQL/Redis/RabbitMQ SDKs) and
# `azure` (Cosmos DB/Service Bus SDKs). `builder` and `runtime` are named contexts: the
# stages of docker/python.Dockerfile. Build from the repository root, e.g.
#   docker buildx bake -f docker/docker-bake.hcl event-processor-local
# No `# syntax=` line on purpose (see docker/python.Dockerfile). hadolint reads one file, so
# it takes the named contexts for untagged images:
# hadolint global ignore=DL3006

# ---- dependency layers: third-party packages only, exactly as locked ----------------------
# Two --package flags because the extras belong to lightning-core, not to the service.
FROM builder AS deps-local
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    uv-sync --no-install-workspace --package lightning-core --package lightning-processor --extra local

FROM builder AS deps-azure
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    uv-sync --no-install-workspace --package lightning-core --package lightning-processor --extra azure

# ---- code last: the workspace members, installed as wheels (not editable) -----------------
FROM deps-local AS app-local
WORKDIR /src
COPY libs/lightning-core/src libs/lightning-core/src
COPY services/event-processor/src services/event-processor/src
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    uv-sync --no-editable --package lightning-core --package lightning-processor --extra local

FROM deps-azure AS app-azure
WORKDIR /src
COPY libs/lightning-core/src libs/lightning-core/src
COPY services/event-processor/src services/event-processor/src
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca,target=/run/secrets/ca.crt \
    uv-sync --no-editable --package lightning-core --package lightning-processor --extra azure

# ---- the service on the shared non-root runtime ------------------------------------------
FROM runtime AS service
# No port and so no HEALTHCHECK: the worker only consumes the bus.
ENV SERVICE_TYPE=event-processor \
    LIGHTNING_SQLITE_PATH=/var/lib/lightning/data/lightning.db
# Metadata last: a new REVISION per commit then invalidates no RUN step above.
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="lightning-processor" \
      org.opencontainers.image.description="Lightning OS event processor: consumes the bus and runs drivers" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.vendor="Lightning OS"

FROM service AS azure
COPY --from=app-azure /opt/venv /opt/venv
ENV LIGHTNING_MODE=azure

# Last stage: a build without --target gets the local image.
FROM service AS local
COPY --from=app-local /opt/venv /opt/venv
ENV LIGHTNING_MODE=local
