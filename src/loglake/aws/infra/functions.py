"""How every loglake function is built: Python 3.12 on arm64, the shared code and dependencies layer
(aws/packaging.py), X-Ray tracing, an encrypted log group; registered so monitoring can watch each."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from loglake.aws.deployment import Deployment
from loglake.aws.packaging import dependencies_layer, function_code


class Functions:
    def __init__(self, scope: Construct, deployment: Deployment, key: kms.IKey) -> None:
        self.deployment = deployment
        self.key = key
        self.layer = dependencies_layer(scope, "Dependencies")
        self.code = function_code()  # one asset, shared by every function
        self.all: dict[str, lambda_.Function] = {}  # by construct id
        self.every: dict[str, cdk.Duration] = {}  # the scheduled ones' intervals, by construct id (monitoring)

    def add(
        self,
        scope: Construct,
        construct_id: str,
        name: str,
        handler: str,
        memory_mb: int,
        timeout: cdk.Duration,
        environment: dict[str, str],
        tmp_mb: int = 512,
    ) -> lambda_.Function:
        """A function named by the convention's `name` (aws/deployment.py SERVICE_CODES) running
        loglake.aws.handlers.`handler`; `tmp_mb` of /tmp (Lambda's default 512 MB is too little for a
        function that writes Parquet files and spills a sort)."""
        function = lambda_.Function(
            scope,
            construct_id,
            function_name=self.deployment.name(name),
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            memory_size=memory_mb,
            timeout=timeout,
            handler=f"loglake.aws.handlers.{handler}",
            code=self.code,
            layers=[self.layer],
            environment=environment,
            ephemeral_storage_size=cdk.Size.mebibytes(tmp_mb),
            tracing=lambda_.Tracing.ACTIVE,
            log_group=logs.LogGroup(
                scope, f"{construct_id}Logs", retention=logs.RetentionDays.ONE_MONTH, encryption_key=self.key
            ),
        )
        self.all[construct_id] = function
        return function

    def schedule(
        self,
        scope: Construct,
        construct_id: str,
        function: lambda_.Function,
        rule_name: str,
        schedule: events.Schedule,
        every: cdk.Duration,
        payload: events.RuleTargetInput | None = None,
    ) -> None:
        """Run `function` on an EventBridge `schedule`, once every `every` (which its failing alarm watches)."""
        events.Rule(
            scope,
            construct_id,
            rule_name=self.deployment.name(rule_name),
            schedule=schedule,
            targets=[events_targets.LambdaFunction(function, event=payload)],
        )
        self.every[next(k for k, f in self.all.items() if f is function)] = every
