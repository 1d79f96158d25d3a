"""Entra ID app registrations: the API (v2 access tokens, a delegated scope, an app role) and
the UI (a confidential web client signing users in on the Front Door host)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_azuread as azuread
import pulumi_random as random

from lightning_core.config import API_APP_ROLE, API_DELEGATED_SCOPE, TokenVersion

#: v2 tokens carry the API's client id as `aud` and the tenant's v2.0 issuer as `iss`.
ACCESS_TOKEN_VERSION = TokenVersion.V2
UI_CALLBACK_PATH = "/auth/callback"


@dataclass(frozen=True)
class EntraAppsArgs:
    #: Registrations are named after it; the API's identifier URI is `api://<name>`.
    name: str
    #: https://<host> browsers reach the UI at (its redirect URI is below it).
    ui_public_url: pulumi.Input[str]
    #: A principal (CI's deploy identity) granted the API's app role, for the smoke test.
    app_role_principal_id: str | None = None


class EntraApps(pulumi.ComponentResource):
    """`api_client_id`, `api_identifier_uri`, `api_scope`, `ui_client_id`, secret
    `ui_client_secret`."""

    def __init__(
        self, name: str, args: EntraAppsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("lightning:infra:EntraApps", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        identifier_uri = f"api://{args.name}"
        scope_id = random.RandomUuid(f"{name}-scope-id", opts=child)
        role_id = random.RandomUuid(f"{name}-app-role-id", opts=child)
        api = azuread.Application(
            f"{name}-api",
            display_name=f"{args.name} API",
            sign_in_audience="AzureADMyOrg",
            identifier_uris=[identifier_uri],
            api=azuread.ApplicationApiArgs(
                requested_access_token_version=int(ACCESS_TOKEN_VERSION),
                oauth2_permission_scopes=[
                    azuread.ApplicationApiOauth2PermissionScopeArgs(
                        id=scope_id.result,
                        value=API_DELEGATED_SCOPE,
                        type="User",
                        enabled=True,
                        admin_consent_display_name="Use Lightning OS as the signed-in user",
                        admin_consent_description="Read and submit the signed-in user's events.",
                        user_consent_display_name="Use Lightning OS as you",
                        user_consent_description="Read and submit your events.",
                    )
                ],
            ),
            app_roles=[
                azuread.ApplicationAppRoleArgs(
                    id=role_id.result,
                    value=API_APP_ROLE,
                    allowed_member_types=["Application"],
                    display_name="Call Lightning OS as an application",
                    description="App-only access, e.g. the deployment's smoke test.",
                    enabled=True,
                )
            ],
            opts=child,
        )
        api_principal = azuread.ServicePrincipal(f"{name}-api", client_id=api.client_id, opts=child)
        if args.app_role_principal_id:
            azuread.AppRoleAssignment(
                f"{name}-api-app-role",
                app_role_id=role_id.result,
                principal_object_id=args.app_role_principal_id,
                resource_object_id=api_principal.object_id,
                opts=child,
            )
        ui = azuread.Application(
            f"{name}-ui",
            display_name=f"{args.name} UI",
            sign_in_audience="AzureADMyOrg",
            web=azuread.ApplicationWebArgs(
                redirect_uris=[pulumi.Output.concat(args.ui_public_url, UI_CALLBACK_PATH)]
            ),
            required_resource_accesses=[
                azuread.ApplicationRequiredResourceAccessArgs(
                    resource_app_id=api.client_id,
                    resource_accesses=[
                        azuread.ApplicationRequiredResourceAccessResourceAccessArgs(
                            id=scope_id.result, type="Scope"
                        )
                    ],
                )
            ],
            opts=child,
        )
        azuread.ServicePrincipal(f"{name}-ui", client_id=ui.client_id, opts=child)
        # The UI may ask for the API scope without a consent prompt or an admin's grant.
        azuread.ApplicationPreAuthorized(
            f"{name}-ui-pre-authorized",
            application_id=api.id,
            authorized_client_id=ui.client_id,
            permission_ids=[scope_id.result],
            opts=child,
        )
        password = azuread.ApplicationPassword(
            f"{name}-ui-secret", application_id=ui.id, display_name="lightning-ui", opts=child
        )
        self.api_client_id: pulumi.Output[str] = api.client_id
        self.api_identifier_uri = identifier_uri
        self.api_scope = f"{identifier_uri}/{API_DELEGATED_SCOPE}"
        self.ui_client_id: pulumi.Output[str] = ui.client_id
        self.ui_client_secret: pulumi.Output[str] = pulumi.Output.secret(password.value)
        self.register_outputs({})
