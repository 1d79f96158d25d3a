# What gets built: one target per service and mode, named <service>-<mode>, on two shared
# stages. The single source of truth for `invoke build` (buildx bake through python-on-whales),
# CI, and the buildah check `nox -s containers` (which reads this file through
# lightning_devtools.bake; tests/test_bake_print.py holds it equal to `bake --print`).
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
}

# _builder and _runtime: the stages every image shares (docker/python.Dockerfile), built
# only as the named contexts `builder` and `runtime` of the images below.
target "stage" {
  matrix = {
    stage = ["builder", "runtime"]
  }
  name       = "_${stage}"
  inherits   = ["_common"]
  dockerfile = "docker/python.Dockerfile"
  target     = stage
  args = {
    PYTHON_IMAGE = PYTHON_IMAGE
  }
  cache-from = ["type=gha,scope=${stage}"]
  cache-to   = ["type=gha,scope=${stage},mode=max"]
}

# api-local ... ui-azure: each service's Dockerfile at the stage named after the mode.
target "image" {
  matrix = {
    service = [
      {
        name  = "api"
        local = "API (FastAPI) for Docker Compose: PostgreSQL, Redis and RabbitMQ SDKs"
        azure = "API (FastAPI) for Azure Container Apps: Cosmos DB and Service Bus SDKs"
      },
      {
        name  = "event-processor"
        local = "Event processor worker for Docker Compose: PostgreSQL, Redis and RabbitMQ SDKs"
        azure = "Event processor worker for Azure: Cosmos DB and Service Bus SDKs"
      },
      {
        name  = "ui"
        local = "Web UI for Docker Compose"
        azure = "Web UI for Azure Container Apps"
      },
    ]
    mode = ["local", "azure"]
  }
  name        = "${service.name}-${mode}"
  inherits    = ["_common"]
  description = service[mode]
  dockerfile  = "docker/${service.name}.Dockerfile"
  target      = mode
  contexts = {
    builder = "target:_builder"
    runtime = "target:_runtime"
  }
  args = {
    VERSION  = VERSION
    REVISION = REVISION
  }
  labels = {
    "org.opencontainers.image.licenses" = "Proprietary"
    "io.lightning-os.mode"              = mode
  }
  tags       = ["${REGISTRY}/lightning-${service.name}:${TAG}-${mode}"]
  cache-from = ["type=gha,scope=${service.name}-${mode}"]
  cache-to   = ["type=gha,scope=${service.name}-${mode},mode=max"]
  attest     = equal(PUSH, "true") ? ["type=sbom", "type=provenance,mode=max"] : []
}
