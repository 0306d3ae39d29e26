"""The deployment file's `ask` section: asking in plain language on AWS (aws/infra/ask.py), with a
Bedrock model. No AWS library is imported here: the CLI and tests read the file without the CDK.

    "ask": {"model": "anthropic.claude-3-5-haiku-20241022-v1:0", "dailyTokens": 1000000,
            "conversationHours": 168, "timeoutSeconds": 8}
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec

from loglake.config_files import whole

# A model id is provider.model-name[:version[:variant]] (anthropic.claude-3-5-haiku-20241022-v1:0); a
# cross-Region inference profile's id is a model id behind a geography (eu.anthropic...).
_GEOGRAPHY = r"(?:us|eu|apac|us-gov|global|jp|au|ca)"
_MODEL_ID = r"[a-z][a-z0-9-]*\.[A-Za-z0-9][A-Za-z0-9_-]*(?::[A-Za-z0-9._-]+){0,2}"
_PROFILE = re.compile(rf"({_GEOGRAPHY})\.({_MODEL_ID})")
# ARNs whose InvokeModel right is the ARN itself (an inference profile's adds its model, model_arns).
_ARN = re.compile(
    rf"arn:aws(?:-cn|-us-gov)?:bedrock:[a-z0-9-]+:(?::foundation-model/{_MODEL_ID}|\d{{12}}:"
    rf"(?:inference-profile/(?P<profile>{_GEOGRAPHY}\.{_MODEL_ID})|(?:provisioned-model|imported-model)/[a-z0-9]+))"
)


class AskConfig(msgspec.Struct, forbid_unknown_fields=True, rename="camel", frozen=True):
    model: Annotated[
        str,
        msgspec.Meta(
            pattern=whole(f"(?:{_GEOGRAPHY}\\.)?{_MODEL_ID}|{_ARN.pattern}"),
            max_length=2048,
            description="a Bedrock model id (provider.model-name[:version], e.g. "
            "anthropic.claude-3-5-haiku-20241022-v1:0), an inference profile id (the same behind us., eu., apac. ...) "
            "or the ARN of a foundation model, inference profile, provisioned or imported model",
        ),
    ]
    daily_tokens: Annotated[int, msgspec.Meta(ge=0, description="tokens per UTC day, 0 for no budget")] = 1_000_000
    conversation_hours: Annotated[int, msgspec.Meta(ge=1, le=8760, description="1-8760 hours")] = 168
    # API Gateway waits 29 s for the function: a model's few attempts must fit in it.
    timeout_seconds: Annotated[int, msgspec.Meta(ge=1, le=9, description="1-9 seconds per model call")] = 8


def model_arns(model: str, region: str, account: str) -> list[str]:
    """What bedrock:InvokeModel must be allowed on to call `model`: its foundation model in the region;
    for an inference profile, the profile and its model in the Regions the profile routes to."""
    partition = "aws-cn" if region.startswith("cn-") else "aws-us-gov" if region.startswith("us-gov-") else "aws"
    arn = _ARN.fullmatch(model)
    if arn is not None:
        profile = _PROFILE.fullmatch(arn["profile"] or "")
        return [model] + ([f"arn:{partition}:bedrock:*::foundation-model/{profile.group(2)}"] if profile else [])
    profile = _PROFILE.fullmatch(model)
    if profile is None:
        return [f"arn:{partition}:bedrock:{region}::foundation-model/{model}"]
    return [
        f"arn:{partition}:bedrock:{region}:{account}:inference-profile/{model}",
        f"arn:{partition}:bedrock:*::foundation-model/{profile.group(2)}",
    ]
