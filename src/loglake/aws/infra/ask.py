"""Asking in plain language on AWS (aws/ask.py), with an `ask` section in the deployment file:
POST /ask, /ask/explain and /ask/{conversationId}/rule on the REST API (its authorization), answered
by one function, and a DynamoDB table for conversations, cached answers and the token budget, whose
items expire by TTL (`expires_at`).

The function may invoke the configured Bedrock model and nothing else of Bedrock; query in the Athena
workgroup, read the Glue tables and the lake bucket (listing it gives the estimates), as the search
function does; and read and write its own table, not the hot one.
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from constructs import Construct

from loglake.aws.ask_config import AskConfig, model_arns
from loglake.aws.infra.api import Api
from loglake.aws.infra.catalog import Catalog
from loglake.aws.infra.functions import Functions

# API Gateway waits 29 s for an answer: the function stops at 30 s, its Athena queries before (aws/ask.py).
ASK_TIMEOUT = cdk.Duration.seconds(30)
ASK_ROUTES = ("ask", "ask/explain", "ask/{conversationId}/rule")  # each POST


class Ask(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, functions: Functions, catalog: Catalog, api: Api, config: AskConfig
    ) -> None:
        super().__init__(scope, construct_id)
        d = functions.deployment
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=d.name("ask_table"),
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=functions.key,
            time_to_live_attribute="expires_at",
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        environment = catalog.athena_environment | {
            "LOGLAKE_ASK_TABLE": self.table.table_name,
            "LOGLAKE_LAKE_BUCKET": catalog.lake_bucket.bucket_name,
            "LOGLAKE_LLM_PROVIDER": "bedrock",
            "LOGLAKE_LLM_MODEL": config.model,
            "LOGLAKE_LLM_TIMEOUT_SECONDS": str(config.timeout_seconds),
            "LOGLAKE_LLM_DAILY_TOKENS": str(config.daily_tokens),
            "LOGLAKE_LLM_CONVERSATION_HOURS": str(config.conversation_hours),
            "LOGLAKE_CORS_ALLOW_ORIGINS": ",".join(d.cors_allow_origins),
        }
        self.function = functions.add(self, "AskFunction", "ask_function", "ask", 512, ASK_TIMEOUT, environment)
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["bedrock:InvokeModel"], resources=model_arns(config.model, d.region, d.account)
            )
        )
        catalog.grant_queries(self.function)
        self.table.grant_read_write_data(self.function)
        integration = apigw.LambdaIntegration(self.function)
        preflight = apigw.LambdaIntegration(api.api_function)  # the app answers browsers' preflights (api/cors.py)
        for path in ASK_ROUTES:
            resource = api.rest_api.root
            for part in path.split("/"):
                resource = resource.get_resource(part) or resource.add_resource(part)
            resource.add_method("POST", integration)
            if d.cors_allow_origins:
                resource.add_method("OPTIONS", preflight, authorization_type=apigw.AuthorizationType.NONE)
