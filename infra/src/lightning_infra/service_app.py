"""One service as a Container App: its image by digest, its identity, its settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
from pulumi_azure_native import app

from lightning_infra.stack_config import Replicas


@dataclass(frozen=True)
class HttpIngress:
    """External HTTPS ingress to `target_port`, probed on the service's health endpoints."""

    target_port: int
    liveness_path: str
    readiness_path: str


@dataclass(frozen=True)
class ServiceAppArgs:
    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    environment_id: pulumi.Input[str]
    image: str
    registry_server: str
    identity_id: pulumi.Input[str]
    replicas: Replicas
    #: Environment variable -> plain, non-secret value.
    settings: Mapping[str, pulumi.Input[str]]
    #: Environment variable -> secret value, held as a Container Apps secret.
    secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    #: Environment variable -> Key Vault secret URI, read with the app's identity.
    key_vault_secrets: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    ingress: HttpIngress | None = None
    scale_rules: Sequence[app.ScaleRuleArgs] = ()


def secret_name(variable: str) -> str:
    """The Container Apps secret (lower case, digits, '-') holding an environment variable."""
    return variable.lower().replace("_", "-")


def _probes(ingress: HttpIngress) -> list[app.ContainerAppProbeArgs]:
    return [
        app.ContainerAppProbeArgs(
            type=kind,
            http_get=app.ContainerAppProbeHttpGetArgs(path=path, port=ingress.target_port),
            period_seconds=10,
        )
        for kind, path in (
            ("Liveness", ingress.liveness_path),
            ("Readiness", ingress.readiness_path),
        )
    ]


def service_bus_scale_rule(
    namespace_name: pulumi.Input[str],
    topic: str,
    subscription: str,
    identity_id: pulumi.Input[str],
    messages_per_replica: int,
) -> app.ScaleRuleArgs:
    """KEDA's `azure-servicebus` scaler on a subscription's backlog, reading it as the
    identity `identity_id` (no connection string)."""
    return app.ScaleRuleArgs(
        name="service-bus-backlog",
        custom=app.CustomScaleRuleArgs(
            type="azure-servicebus",
            identity=identity_id,
            metadata={
                "namespace": namespace_name,
                "topicName": topic,
                "subscriptionName": subscription,
                "messageCount": str(messages_per_replica),
            },
        ),
    )


class ServiceApp(pulumi.ComponentResource):
    """`name`, and for an app with ingress `url` (https://<fqdn>) and `fqdn`."""

    def __init__(
        self, name: str, args: ServiceAppArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("lightning:infra:ServiceApp", name, None, opts)
        secrets = [
            app.SecretArgs(name=secret_name(variable), value=pulumi.Output.secret(value))
            for variable, value in args.secrets.items()
        ] + [
            app.SecretArgs(name=secret_name(variable), key_vault_url=uri, identity=args.identity_id)
            for variable, uri in args.key_vault_secrets.items()
        ]
        env = [
            app.EnvironmentVarArgs(name=key, value=value) for key, value in args.settings.items()
        ]
        env += [
            app.EnvironmentVarArgs(name=variable, secret_ref=secret_name(variable))
            for variable in (*args.secrets, *args.key_vault_secrets)
        ]
        ingress = args.ingress
        container_app = app.ContainerApp(
            name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            managed_environment_id=args.environment_id,
            identity=app.ManagedServiceIdentityArgs(
                type=app.ManagedServiceIdentityType.USER_ASSIGNED,
                user_assigned_identities=[args.identity_id],
            ),
            configuration=app.ConfigurationArgs(
                active_revisions_mode=app.ActiveRevisionsMode.SINGLE,
                registries=[
                    app.RegistryCredentialsArgs(
                        server=args.registry_server, identity=args.identity_id
                    )
                ],
                secrets=secrets,
                ingress=None
                if ingress is None
                else app.IngressArgs(
                    external=True,
                    target_port=ingress.target_port,
                    transport=app.IngressTransportMethod.AUTO,
                    allow_insecure=False,
                ),
            ),
            template=app.TemplateArgs(
                containers=[
                    app.ContainerArgs(
                        name=name,
                        image=args.image,
                        env=env,
                        probes=[] if ingress is None else _probes(ingress),
                        resources=app.ContainerResourcesArgs(cpu=0.5, memory="1Gi"),
                    )
                ],
                scale=app.ScaleArgs(
                    min_replicas=args.replicas.minimum,
                    max_replicas=args.replicas.maximum,
                    rules=list(args.scale_rules),
                ),
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.name: pulumi.Output[str] = container_app.name
        self.fqdn: pulumi.Output[str] = container_app.configuration.apply(
            lambda configuration: (
                configuration.ingress.fqdn if configuration and configuration.ingress else ""
            )
        )
        self.url: pulumi.Output[str] = self.fqdn.apply(lambda fqdn: f"https://{fqdn}")
        self.register_outputs({})
