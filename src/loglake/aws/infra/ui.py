"""The web UI on AWS (the deployment's `ui` section, aws/ui_config.py): a Cognito user pool with its
hosted UI, groups and a public app client (code flow with PKCE), a sessions table, and the UI function
behind a REST API of its own at the root of the UI's domain.

That API has no IAM authorization (a browser cannot sign SigV4): the UI function's app takes only its
session cookie (aws/ui_auth.py). Its execute-api address is switched off, so the UI is reached only at
its domain, the origin of the client's callback and sign-out URLs and of the cookies. The function reads
the hot table and queries through Athena like the search function; it cannot write records.
"""

from __future__ import annotations

import json

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_logs as logs
from constructs import Construct

from loglake.aws.cognito import CALLBACK_PATH, SIGNED_OUT_PATH
from loglake.aws.infra.api import Api, stage_options
from loglake.aws.infra.catalog import Catalog
from loglake.aws.infra.functions import Functions
from loglake.aws.infra.monitoring import FIVE_MINUTES, Monitoring
from loglake.aws.infra.storage import Storage
from loglake.aws.ui_config import UiSection
from loglake.aws.ui_sessions import PARTITION_KEY, TTL_ATTRIBUTE

# People, not programs: a page load makes a handful of calls.
THROTTLE_RATE, THROTTLE_BURST = 200, 400


class WebUi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        functions: Functions,
        storage: Storage,
        catalog: Catalog,
        api: Api,
        monitoring: Monitoring,
    ) -> None:
        super().__init__(scope, construct_id)
        d = functions.deployment
        assert d.ui is not None
        ui: UiSection = d.ui
        self.user_pool = self._user_pool(d.name("user_pool"))
        self.hosted_ui = self.user_pool.add_domain(
            "HostedUi",
            cognito_domain=cognito.CognitoDomainOptions(domain_prefix=ui.hosted_ui_prefix(d.name("user_pool"))),
        )
        self.client = self.user_pool.add_client(
            "UiClient",
            generate_secret=False,  # a public client: PKCE, not a secret, binds the code to the sign-in
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL, cognito.OAuthScope.PROFILE],
                callback_urls=[ui.url + CALLBACK_PATH],
                logout_urls=[ui.url + SIGNED_OUT_PATH],
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            prevent_user_existence_errors=True,
            id_token_validity=cdk.Duration.minutes(60),
            access_token_validity=cdk.Duration.minutes(60),
            refresh_token_validity=cdk.Duration.days(1),
        )
        # Cognito's default lets the client call the pool's API with a password (SRP); the UI signs in
        # through the hosted UI alone.
        client_resource = self.client.node.default_child
        assert isinstance(client_resource, cognito.CfnUserPoolClient)
        client_resource.explicit_auth_flows = ["ALLOW_REFRESH_TOKEN_AUTH"]
        for group, scopes in ui.groups.items():
            cognito.CfnUserPoolGroup(
                self,
                f"Group-{group}",
                user_pool_id=self.user_pool.user_pool_id,
                group_name=group,
                description=f"loglake web UI: {', '.join(scopes)}",
            )
        self.sessions_table = self._sessions_table(d.name("sessions_table"), functions)
        environment = {
            "LOGLAKE_DYNAMODB_TABLE": storage.table.table_name,
            "LOGLAKE_TIME_SHARDS": str(d.time_shards),
            "LOGLAKE_RETENTION_DAYS": str(d.retention_days),
            "LOGLAKE_UI_SESSIONS_TABLE": self.sessions_table.table_name,
            "LOGLAKE_UI_URL": ui.url,
            "LOGLAKE_COGNITO_DOMAIN": self.hosted_ui.base_url(),
            # The pool's ProviderURL attribute lacks the scheme the tokens' `iss` has.
            "LOGLAKE_COGNITO_ISSUER": f"https://cognito-idp.{d.region}.amazonaws.com/{self.user_pool.user_pool_id}",
            "LOGLAKE_COGNITO_CLIENT_ID": self.client.user_pool_client_id,
            "LOGLAKE_COGNITO_GROUPS": json.dumps(ui.groups, sort_keys=True),
        } | catalog.athena_environment
        self.function = functions.add(
            self, "UiFunction", "ui_function", "api", 256, cdk.Duration.seconds(30), environment
        )
        storage.table.grant_read_data(self.function)
        self.sessions_table.grant(self.function, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem")
        functions.key.grant_encrypt_decrypt(self.function)
        catalog.grant_queries(self.function)
        self.rest_api = self._rest_api(d.name("ui_api"), d.environment, ui, functions)
        # Its stage logs through the account's CloudWatch role, which the IAM API's construct sets.
        self.rest_api.deployment_stage.node.add_dependency(api.rest_api.node.find_child("Account"))
        # As the IAM API's: server errors > 5 and the function's average duration > 5 s in 5 minutes (its
        # errors are alarmed with every function's). Sign-ins refused are 4xx by design: not alarmed.
        monitoring.alarm("UiApi5xx", self.rest_api.metric_server_error(period=FIVE_MINUTES, statistic="Sum"), 5)
        monitoring.alarm("UiFunctionDuration", self.function.metric_duration(period=FIVE_MINUTES), 5000)
        for name, value, description in [
            ("UiUrl", f"{ui.url}/ui/", "the web UI"),
            ("UiDomainTarget", self.rest_api.domain_name.domain_name_alias_domain_name, "point the UI's DNS name here"),
            ("UserPoolId", self.user_pool.user_pool_id, "add people to its groups to let them sign in"),
        ]:
            cdk.CfnOutput(cdk.Stack.of(self), name, value=value, description=description)

    def _user_pool(self, name: str) -> cognito.UserPool:
        """Administrators create the users (no self sign-up); e-mail is the sign-in name and the way back
        into an account; MFA by authenticator app is offered."""
        return cognito.UserPool(
            self,
            "UserPool",
            user_pool_name=name,
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True),
            standard_attributes=cognito.StandardAttributes(email=cognito.StandardAttribute(required=True)),
            password_policy=cognito.PasswordPolicy(min_length=12),
            mfa=cognito.Mfa.OPTIONAL,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            deletion_protection=True,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )

    def _sessions_table(self, name: str, functions: Functions) -> dynamodb.Table:
        """Sessions and sign-ins under way, by the hash of their secret; gone at `expires_at` (TTL).
        Nothing in it outlives a day of work: no backups, and removed with the stack."""
        return dynamodb.Table(
            self,
            "SessionsTable",
            table_name=name,
            partition_key=dynamodb.Attribute(name=PARTITION_KEY, type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=functions.key,
            time_to_live_attribute=TTL_ATTRIBUTE,
            removal_policy=cdk.RemovalPolicy.DESTROY,
        )

    def _rest_api(self, name: str, stage: str, ui: UiSection, functions: Functions) -> apigw.RestApi:
        access_logs = logs.LogGroup(
            self, "UiAccessLogs", retention=logs.RetentionDays.ONE_YEAR, encryption_key=functions.key
        )
        api = apigw.RestApi(
            self,
            "UiApi",
            rest_api_name=name,
            endpoint_types=[apigw.EndpointType.REGIONAL],
            disable_execute_api_endpoint=True,
            domain_name=apigw.DomainNameOptions(
                domain_name=ui.domain,
                certificate=acm.Certificate.from_certificate_arn(self, "Certificate", ui.certificate_arn),
                endpoint_type=apigw.EndpointType.REGIONAL,
                security_policy=apigw.SecurityPolicy.TLS_1_2,
            ),
            deploy_options=stage_options(stage, access_logs, rate=THROTTLE_RATE, burst=THROTTLE_BURST, callers=False),
            cloud_watch_role=False,  # the IAM API's account-wide role already lets API Gateway log
            # Every answer may be bytes (gzipped assets, base64 in the proxy response): */* has API
            # Gateway decode them whatever the browser accepts.
            binary_media_types=["*/*"],
        )
        # Every path to the app, which routes, authenticates (the session cookie) and answers 404s itself.
        integration = apigw.LambdaIntegration(self.function)
        api.root.add_method("ANY", integration, authorization_type=apigw.AuthorizationType.NONE)
        api.root.add_proxy(
            default_integration=integration,
            any_method=True,
            default_method_options=apigw.MethodOptions(authorization_type=apigw.AuthorizationType.NONE),
        )
        return api
