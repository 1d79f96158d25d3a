"""Front Door Standard: one HTTPS endpoint routing `/api/*` and the API's documentation
(`/docs`, its OAuth redirect, `/redoc`, `/openapi.json`; their assets are under `/api/`) to
the API and everything else to the UI, uncached (responses are per user, and SSE streams)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import cdn

#: Above the API's 15 s SSE keep-alive comments, so an idle stream is never cut by Front Door.
ORIGIN_RESPONSE_TIMEOUT_SECONDS = 60
API_PATTERNS = ("/api/*", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json")
UI_PATTERNS = ("/*",)


@dataclass(frozen=True)
class FrontDoorArgs:
    resource_group_name: pulumi.Input[str]


class FrontDoor(pulumi.ComponentResource):
    """The profile and its endpoint: `profile_name`, `endpoint_name`, `host_name`, `url`.

    Created before the apps (the UI's redirect URI needs the host); `route` adds the origins.
    """

    def __init__(
        self, name: str, args: FrontDoorArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("lightning:infra:FrontDoor", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._resource_group_name = args.resource_group_name
        profile = cdn.Profile(
            name,
            resource_group_name=args.resource_group_name,
            location="global",
            sku=cdn.SkuArgs(name=cdn.SkuName.STANDARD_AZURE_FRONT_DOOR),
            origin_response_timeout_seconds=ORIGIN_RESPONSE_TIMEOUT_SECONDS,
            opts=child,
        )
        endpoint = cdn.AFDEndpoint(
            f"{name}-endpoint",
            resource_group_name=args.resource_group_name,
            profile_name=profile.name,
            location="global",
            enabled_state=cdn.EnabledState.ENABLED,
            opts=child,
        )
        self.profile_name: pulumi.Output[str] = profile.name
        self.endpoint_name: pulumi.Output[str] = endpoint.name
        self.host_name: pulumi.Output[str] = endpoint.host_name
        self.url: pulumi.Output[str] = endpoint.host_name.apply(lambda host: f"https://{host}")
        self.register_outputs({})

    def route(
        self, name: str, origin_host: pulumi.Input[str], probe_path: str, patterns: tuple[str, ...]
    ) -> None:
        """Send `patterns` to one origin over HTTPS only (HTTP is redirected), uncached."""
        child = pulumi.ResourceOptions(parent=self)
        group = cdn.AFDOriginGroup(
            name,
            resource_group_name=self._resource_group_name,
            profile_name=self.profile_name,
            load_balancing_settings=cdn.LoadBalancingSettingsParametersArgs(
                sample_size=4, successful_samples_required=3, additional_latency_in_milliseconds=50
            ),
            health_probe_settings=cdn.HealthProbeParametersArgs(
                probe_path=probe_path,
                probe_protocol=cdn.ProbeProtocol.HTTPS,
                probe_request_type=cdn.HealthProbeRequestType.GET,
                probe_interval_in_seconds=100,
            ),
            session_affinity_state=cdn.EnabledState.DISABLED,
            opts=child,
        )
        origin = cdn.AFDOrigin(
            name,
            resource_group_name=self._resource_group_name,
            profile_name=self.profile_name,
            origin_group_name=group.name,
            host_name=origin_host,
            origin_host_header=origin_host,
            https_port=443,
            http_port=80,
            priority=1,
            weight=1000,
            enforce_certificate_name_check=True,
            enabled_state=cdn.EnabledState.ENABLED,
            opts=child,
        )
        cdn.Route(
            name,
            resource_group_name=self._resource_group_name,
            profile_name=self.profile_name,
            endpoint_name=self.endpoint_name,
            origin_group=cdn.ResourceReferenceArgs(id=group.id),
            patterns_to_match=list(patterns),
            supported_protocols=[cdn.AFDEndpointProtocols.HTTP, cdn.AFDEndpointProtocols.HTTPS],
            https_redirect=cdn.HttpsRedirect.ENABLED,
            forwarding_protocol=cdn.ForwardingProtocol.HTTPS_ONLY,
            link_to_default_domain=cdn.LinkToDefaultDomain.ENABLED,
            enabled_state=cdn.EnabledState.ENABLED,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[origin]),
        )
