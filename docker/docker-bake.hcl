# What gets built: one target per service and mode. The single source of truth for
# `invoke build` (buildx bake through python-on-whales), CI, and the buildah check
# `nox -s containers` (which reads this file through lightning_devtools.bake).
#
# Run from the repository root:  docker buildx bake -f docker/docker-bake.hcl [local|azure]
# Paths below are relative to that working directory (bake resolves them against the
# current directory, not this file). No absolute host paths: bake refuses them without
# extra entitlements. Every variable can be overridden from the environment, e.g.
#   REGISTRY=myacr.azurecr.io TAG=$(git rev-parse --short HEAD) PUSH=true \
#     docker buildx bake -f docker/docker-bake.hcl --push azure

variable "REGISTRY" {
  # `localhost/` is the name podman gives local images, so compose.yaml finds them as-is.
  default = "localhost"
}

variable "TAG" {
  default = "dev"
}

variable "PLATFORMS" {
  # Comma-separated; a multi-platform build needs --push (the classic store cannot --load it).
  default = "linux/amd64"
}

variable "PYTHON_IMAGE" {
  # `nox -s containers` passes a debootstrap'ed Debian trixie image where no registry is reachable.
  default = "python:3.13-slim"
}

variable "VERSION" {
  default = "0.1.0"
}

variable "REVISION" {
  # The git commit, for the org.opencontainers.image.revision label.
  default = "unknown"
}

variable "PUSH" {
  # "true" for registry pushes: attestations need a registry or the containerd store, and
  # the default docker driver refuses them on --load.
  default = "false"
}

group "default" {
  targets = ["local"]
}

group "local" {
  targets = ["api-local", "event-processor-local", "ui-local"]
}

group "azure" {
  targets = ["api-azure", "event-processor-azure", "ui-azure"]
}

group "all" {
  targets = ["local", "azure"]
}

# Shared by every target; names starting with `_` are not meant to be built on their own.
target "_common" {
  context   = "."
  platforms = split(",", PLATFORMS)
  args = {
    PYTHON_IMAGE = "${PYTHON_IMAGE}"
    VERSION      = "${VERSION}"
    REVISION     = "${REVISION}"
  }
  labels = {
    "org.opencontainers.image.licenses" = "Proprietary"
  }
  attest = equal(PUSH, "true") ? ["type=sbom", "type=provenance,mode=max"] : []
}

target "_local" {
  inherits = ["_common"]
  target   = "local"
  labels = {
    "io.lightning-os.mode" = "local"
  }
}

target "_azure" {
  inherits = ["_common"]
  target   = "azure"
  labels = {
    "io.lightning-os.mode" = "azure"
  }
}

target "api-local" {
  inherits    = ["_local"]
  description = "API (FastAPI) for Docker Compose: PostgreSQL, Redis and RabbitMQ SDKs"
  dockerfile  = "docker/api.Dockerfile"
  tags        = ["${REGISTRY}/lightning-api:${TAG}-local"]
  cache-from  = ["type=gha,scope=api-local"]
  cache-to    = ["type=gha,scope=api-local,mode=max"]
}

target "api-azure" {
  inherits    = ["_azure"]
  description = "API (FastAPI) for Azure Container Apps: Cosmos DB and Service Bus SDKs"
  dockerfile  = "docker/api.Dockerfile"
  tags        = ["${REGISTRY}/lightning-api:${TAG}-azure"]
  cache-from  = ["type=gha,scope=api-azure"]
  cache-to    = ["type=gha,scope=api-azure,mode=max"]
}

target "event-processor-local" {
  inherits    = ["_local"]
  description = "Event processor worker for Docker Compose: PostgreSQL, Redis and RabbitMQ SDKs"
  dockerfile  = "docker/event-processor.Dockerfile"
  tags        = ["${REGISTRY}/lightning-event-processor:${TAG}-local"]
  cache-from  = ["type=gha,scope=event-processor-local"]
  cache-to    = ["type=gha,scope=event-processor-local,mode=max"]
}

target "event-processor-azure" {
  inherits    = ["_azure"]
  description = "Event processor worker for Azure: Cosmos DB and Service Bus SDKs"
  dockerfile  = "docker/event-processor.Dockerfile"
  tags        = ["${REGISTRY}/lightning-event-processor:${TAG}-azure"]
  cache-from  = ["type=gha,scope=event-processor-azure"]
  cache-to    = ["type=gha,scope=event-processor-azure,mode=max"]
}

target "ui-local" {
  inherits    = ["_local"]
  description = "Web UI for Docker Compose"
  dockerfile  = "docker/ui.Dockerfile"
  tags        = ["${REGISTRY}/lightning-ui:${TAG}-local"]
  cache-from  = ["type=gha,scope=ui-local"]
  cache-to    = ["type=gha,scope=ui-local,mode=max"]
}

target "ui-azure" {
  inherits    = ["_azure"]
  description = "Web UI for Azure Container Apps"
  dockerfile  = "docker/ui.Dockerfile"
  tags        = ["${REGISTRY}/lightning-ui:${TAG}-azure"]
  cache-from  = ["type=gha,scope=ui-azure"]
  cache-to    = ["type=gha,scope=ui-azure,mode=max"]
}
