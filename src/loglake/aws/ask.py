"""POST /ask, POST /ask/explain and POST /ask/{conversationId}/rule on AWS, behind API Gateway: the
same requests, answers and errors as `loglake serve` (api/ask_routes.py), with Bedrock's model by
default, Athena's SQL described from the Glue tables and estimated from the lake's S3 objects
(aws/ask_source.py), conversations and the token budget in DynamoDB (aws/ask_store.py), and an
answer run (`run: true`) by the engine of POST /query on AWS, within the time API Gateway waits.

A conversation belongs to its caller: the Cognito user (`sub`) when the API signs users in, else the
IAM principal that signed the request. Rule files are written only where the rules folder is: here a
draft comes back unvalidated (the rules loader needs pySigma, which the Lambda layer has not), to be
added to the deployment's rules folder, which `cdk synth` loads and converts.

Environment: LOGLAKE_ASK_TABLE, LOGLAKE_LAKE_BUCKET, the Athena variables of POST /query, and the
LOGLAKE_LLM_* settings (LOGLAKE_LLM_PROVIDER defaults to bedrock; the stack sets the model).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3

from loglake.api.ask_routes import ASK_ERRORS, AskBody, ExplainBody, RuleBody, api_error
from loglake.api.http import ApiError, json_struct
from loglake.ask.providers import provider_from_settings
from loglake.ask.service import Asker, Question
from loglake.aws.apigateway import fit_for_lambda, json_body_of
from loglake.aws.ask_source import AthenaSource
from loglake.aws.ask_store import DynamoDBAskStore
from loglake.aws.athena import AthenaQueryEngine
from loglake.config_load import load_settings
from loglake.lake.objectstore import S3ObjectStore
from loglake.lake.query_answers import result_to_dict

_ROUTE = re.compile(r"/ask(?:/(?P<explain>explain)|/(?P<conversation>[^/]+)/rule)?/?")
RULES_ARE_LOCAL = (
    "writing rules is local-only: add this file to the deployment's rules folder (detections.rulesDir) and "
    "deploy; cdk synth validates it"
)
ANSWER_MARGIN_S = 2.0  # of the function's time, kept for answering after an answer's query ran


class AskApi:
    def __init__(self, asker: Asker, engine: AthenaQueryEngine) -> None:
        self.asker = asker
        self.engine = engine

    def handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """One API Gateway proxy event; the proxy response."""
        from loglake.aws.handlers import _cors_headers, unexpected

        status, headers = 200, {"content-type": "application/json"}
        try:
            body = self._answer(event, context)
        except (ApiError, *ASK_ERRORS) as e:
            error = e if isinstance(e, ApiError) else api_error(e)
            status, body = error.status, error.body()
            headers |= {name.decode(): value.decode() for name, value in error.headers}
        except Exception as e:
            status, body = 500, unexpected(event, e).body()
        headers |= _cors_headers(event)
        return fit_for_lambda({"statusCode": status, "headers": headers, "body": json.dumps(body)})

    def _answer(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        route = _ROUTE.fullmatch(event.get("path") or "")
        if event.get("httpMethod") != "POST" or route is None:
            raise ApiError(404, "not_found", "POST /ask, /ask/explain or /ask/{conversationId}/rule")
        owner = caller_of(event)
        if route["explain"]:
            explained = json_body_of(event, "POST /ask/explain", EXPLAIN_EXAMPLE)
            body = json_struct(explained, ExplainBody, EXPLAIN_EXAMPLE)
            return self.asker.explain_sql(body.sql)
        if route["conversation"]:
            drafted = json_body_of(event, "POST /ask/{conversationId}/rule", RULE_EXAMPLE, empty_ok=True)
            rule = json_struct(drafted, RuleBody, RULE_EXAMPLE)
            if rule.confirm:
                raise ApiError(501, "not_available", RULES_ARE_LOCAL)
            draft = self.asker.draft_rule(route["conversation"], owner, validate=False)
            return {**draft.to_dict(), "written": None, "note": RULES_ARE_LOCAL}
        wanted = json_struct(json_body_of(event, "POST /ask", ASK_EXAMPLE), AskBody, ASK_EXAMPLE)
        answer = self.asker.ask(Question(wanted.question, wanted.conversation_id, wanted.time_zone, owner))
        if wanted.run and answer["sql"] is not None:
            answer["result"] = result_to_dict(self.engine.query(answer["sql"], timeout_seconds=_time_left(context)))
        return answer


ASK_EXAMPLE = '{"question": "how many errors did the api service log today?"}'
EXPLAIN_EXAMPLE = '{"sql": "SELECT service, count(*) FROM logs GROUP BY 1"}'
RULE_EXAMPLE = '{"confirm": false}'


def ask_api_from_environment(
    environ: dict[str, str], engine: AthenaQueryEngine, clock: Callable[[], float] = time.time
) -> AskApi:
    """The function's AskApi (one per container), as the stack configures it (see the module doc)."""
    # Bedrock unless the stack names another provider (read from the environment, so its errors name the variable).
    bedrock = {} if environ.get("LOGLAKE_LLM_PROVIDER") else {"llm_provider": "bedrock"}
    settings = load_settings({"data_dir": Path("/tmp/loglake"), **bedrock}, environ=environ)
    for name in ("LOGLAKE_ASK_TABLE", "LOGLAKE_LAKE_BUCKET"):
        if not environ.get(name):
            raise RuntimeError(f"set {name} (the stack's ask table and lake bucket)")
    store = DynamoDBAskStore(
        boto3.client("dynamodb"), environ["LOGLAKE_ASK_TABLE"], clock, settings.llm_conversation_hours * 3_600_000
    )
    source = AthenaSource(S3ObjectStore(boto3.client("s3"), environ["LOGLAKE_LAKE_BUCKET"]), engine.limits.max_rows)
    return AskApi(Asker(settings, source, provider_from_settings(settings), clock, store), engine)


def caller_of(event: dict[str, Any]) -> str:
    """Who asks: the Cognito user of a signed-in request, else the IAM principal that signed it."""
    context = event.get("requestContext") or {}
    claims = (context.get("authorizer") or {}).get("claims") or {}
    if claims.get("sub"):
        return f"cognito:{claims['sub']}"
    identity = context.get("identity") or {}
    return identity.get("userArn") or identity.get("caller") or ""


def _time_left(context: Any) -> float | None:
    """Seconds an answer's query may take: the function's time left, less the time to answer."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return None if remaining is None else max(1.0, remaining() / 1000 - ANSWER_MARGIN_S)
