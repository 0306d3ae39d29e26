"""The Amplify collection as a Step Functions state machine (aws/amplify_steps.py does the steps):
plan -> Map over apps (4) -> Map over windows (2) -> download -> finish -> check, started by
EventBridge on the configuration's schedule with the configuration as input. A window that fails
after its retries is recorded as failed (its app's watermark stays before it) and, once the others
are stored, fails the run; any failure notifies the alarm topic."""

from __future__ import annotations

import json
from typing import Any

import aws_cdk as cdk
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from loglake.aws.infra.catalog import Catalog
from loglake.aws.infra.functions import Functions
from loglake.aws.infra.storage import Storage

_WINDOW_INPUT = {"app.$": "$.app", "window.$": "$.window", "run_at.$": "$.run_at", "config.$": "$.config"}


class AmplifyCollector(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        functions: Functions,
        storage: Storage,
        catalog: Catalog,
        topic: sns.ITopic,
    ) -> None:
        super().__init__(scope, construct_id)
        d = self.deployment = functions.deployment
        amplify: dict[str, Any] = d.amplify or {}
        lake = storage.lake_bucket
        lake_env = {"LOGLAKE_LAKE_BUCKET": lake.bucket_name}
        minute = cdk.Duration.minutes(1)
        plan = functions.add(
            self, "AmplifyPlanFunction", "amplify_plan_function", "amplify_plan", 256, minute, lake_env
        )
        download = functions.add(
            self,
            "AmplifyDownloadFunction",
            "amplify_download_function",
            "amplify_download",
            1024,
            cdk.Duration.minutes(15),
            lake_env | {"LOGLAKE_AMPLIFY_ROLES": json.dumps(d.amplify_roles, sort_keys=True)},
            tmp_mb=2048,  # a window's Parquet parts before upload
        )
        finish = functions.add(
            self,
            "AmplifyFinishFunction",
            "amplify_finish_function",
            "amplify_finish",
            256,
            minute,
            lake_env | {"LOGLAKE_GLUE_CRAWLER": catalog.crawler_name},
        )
        lake.grant_read(plan, "_state/amplify/*")
        lake.grant_read_write(download, "type=amplify_*")  # exports and parsed rows only
        lake.grant_read_write(finish, "_state/amplify/*")
        self._grant_amplify(download, amplify["applications"])
        catalog.grant_start_crawler(finish)

        self.machine = sfn.StateMachine(
            self,
            "AmplifyCollector",
            state_machine_name=d.name("collector"),
            definition_body=sfn.DefinitionBody.from_chainable(self._definition(plan, download, finish, topic)),
            tracing_enabled=True,
            timeout=cdk.Duration.hours(12),
        )
        functions.key.grant(
            self.machine.role, "kms:Decrypt", "kms:GenerateDataKey*"
        )  # to publish to the encrypted topic
        self._schedule(amplify)
        # A run past the machine's timeout ends TIMED_OUT, which neither its catch (the notice) nor ExecutionsFailed
        # sees: it has an alarm of its own.
        five_minutes = cdk.Duration.minutes(5)
        for name, metric in (
            ("AmplifyCollectorFailed", self.machine.metric_failed(period=five_minutes, statistic="Sum")),
            ("AmplifyCollectorTimedOut", self.machine.metric_timed_out(period=five_minutes, statistic="Sum")),
        ):
            failed_runs = cloudwatch.Alarm(
                self,
                name,
                alarm_name=f"{d.name('alarms')}-{name}",
                metric=metric,
                threshold=0,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            failed_runs.add_alarm_action(cloudwatch_actions.SnsAction(topic))

    def _grant_amplify(self, download: lambda_.Function, applications: list[dict]) -> None:
        """GenerateAccessLogs on this account's configured apps; sts:AssumeRole on the roles of the
        apps in other accounts (their roles must also trust the downloader's role)."""
        d = self.deployment
        stack = cdk.Stack.of(self)
        own_apps = [
            stack.format_arn(service="amplify", region=app["region"], resource="apps", resource_name=app["appId"])
            for app in applications
            if app["profile"] not in d.amplify_roles
        ]
        if own_apps:
            download.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["amplify:GenerateAccessLogs"],
                    resources=[arn for app in own_apps for arn in (app, f"{app}/*")],
                )
            )
        if d.amplify_roles:
            download.add_to_role_policy(
                iam.PolicyStatement(actions=["sts:AssumeRole"], resources=sorted(set(d.amplify_roles.values())))
            )

    def _invoke(self, name: str, function: lambda_.Function, payload: dict | None = None) -> tasks.LambdaInvoke:
        task = tasks.LambdaInvoke(
            self,
            name,
            lambda_function=function,
            payload=sfn.TaskInput.from_object(payload) if payload else None,
            payload_response_only=True,
        )
        task.add_retry(
            errors=["Lambda.TooManyRequestsException", "Lambda.ServiceException", "States.Timeout"],
            interval=cdk.Duration.seconds(10),
            max_attempts=4,
            backoff_rate=2,
            jitter_strategy=sfn.JitterType.FULL,
        )
        return task

    def _definition(
        self, plan: lambda_.Function, download: lambda_.Function, finish: lambda_.Function, topic: sns.ITopic
    ) -> sfn.IChainable:
        fetch = self._invoke("DownloadWindow", download, _WINDOW_INPUT)
        fetch.add_retry(errors=["States.ALL"], interval=cdk.Duration.seconds(30), max_attempts=2, backoff_rate=2)
        failed_window = sfn.Pass(
            self, "WindowFailed", parameters={"window.$": "$.window", "ok": False, "error.$": "$.failure.Cause"}
        )
        fetch.add_catch(failed_window, errors=["States.ALL"], result_path="$.failure")
        windows = sfn.Map(
            self,
            "EachWindow",
            items_path="$.windows",
            max_concurrency=2,
            item_selector=_WINDOW_INPUT | {"window.$": "$$.Map.Item.Value"},
            result_path="$.windows",
        )
        windows.item_processor(fetch)
        # Each app's result: its name, its windows' outcomes and the run's time (which tells finish which hours were
        # collected old enough to need no recheck), not the configuration again.
        app_result = sfn.Pass(
            self, "AppResult", parameters={"app.$": "$.app", "windows.$": "$.windows", "run_at.$": "$.run_at"}
        )
        apps = sfn.Map(
            self,
            "EachApp",
            items_path="$.apps",
            max_concurrency=4,
            item_selector={
                "app.$": "$$.Map.Item.Value.app",
                "windows.$": "$$.Map.Item.Value.windows",
                "run_at.$": "$.run_at",
                "config.$": "$.config",
            },
            result_path="$.collected",  # per app: {app, windows: their outcomes, run_at}
        )
        apps.item_processor(windows.next(app_result))
        finished = self._invoke("Finish", finish, {"results.$": "$.collected"})
        # Windows that failed after their retries fail the run once the others are stored and the
        # watermarks moved: the topic hears of it and the failed-executions alarm counts it.
        windows_failed = sfn.Fail(
            self,
            "WindowsFailed",
            error="WindowsFailed",
            cause_path=sfn.JsonPath.json_to_string(sfn.JsonPath.object_at("$.apps")),
        )
        checked = (
            sfn.Choice(self, "AllWindowsStored")
            .when(sfn.Condition.boolean_equals("$.ok", False), windows_failed)
            .otherwise(sfn.Succeed(self, "Collected"))
        )
        run = sfn.Parallel(self, "Collection").branch(
            self._invoke("Plan", plan).next(apps).next(finished).next(checked)
        )
        notify = tasks.SnsPublish(
            self,
            "NotifyFailure",
            topic=topic,
            message=sfn.TaskInput.from_json_path_at("$.failure.Cause"),
            subject="loglake: the Amplify collection failed",
        )
        run.add_catch(notify.next(sfn.Fail(self, "CollectionFailed")), result_path="$.failure")
        return run

    def _schedule(self, amplify: dict[str, Any]) -> None:
        """The configuration's schedule as an EventBridge cron (weekly Monday 01:00: cron(0 1 ? * MON *)),
        passing the configuration as the run's input."""
        schedule = amplify.get("schedule") or {"frequency": "weekly", "dayOfWeek": "Monday", "timeOfDay": "01:00"}
        hour, minute = (int(p) for p in schedule["timeOfDay"].split(":"))
        weekly = schedule.get("frequency", "weekly").lower() == "weekly"
        day = schedule.get("dayOfWeek", "Monday")[:3].upper() if weekly else "*"
        events.Rule(
            self,
            "AmplifySchedule",
            rule_name=self.deployment.name("schedule"),
            schedule=events.Schedule.expression(f"cron({minute} {hour} ? * {day} *)"),
            targets=[
                events_targets.SfnStateMachine(
                    self.machine, input=events.RuleTargetInput.from_object({"config": amplify})
                )
            ],
        )
