"""The deployment file's `ui` section: the web UI on AWS, at the root of its own domain.

    "ui": {"domain": "logs.example.com",
           "certificateArn": "arn:aws:acm:eu-west-1:182059100462:certificate/...",
           "groups": {"loglake-admin": ["admin"], "loglake-readers": ["read"]}}

The UI's pages address the API at the root of their site (`/logs/search`, `/session`), so they need a
domain of their own: API Gateway's default address puts the stage's name in front of every path. The
certificate (ACM, in the stack's region) is the domain's. Each group of the Cognito user pool gives its
members the listed scopes; a person in no listed group cannot sign in. No AWS library is imported here.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from loglake.config_files import one_of, whole
from loglake.keys import SCOPES

DEFAULT_GROUPS = {"loglake-admin": ["admin"], "loglake-readers": ["read"]}
_FORBIDDEN_IN_PREFIX = ("aws", "amazon", "cognito")  # Cognito refuses domain prefixes containing these

_Domain = Annotated[
    str,
    msgspec.Meta(
        pattern=whole(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"),
        max_length=253,
        description="a lowercase DNS name such as logs.example.com",
    ),
]
_CertificateArn = Annotated[
    str,
    msgspec.Meta(
        pattern=whole(r"arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}"),
        description="an ACM certificate ARN such as arn:aws:acm:eu-west-1:111122223333:certificate/<uuid>",
    ),
]
_Group = Annotated[
    str, msgspec.Meta(pattern=whole(r"[\w.+=,@-]{1,128}"), description="a Cognito group name (1-128 characters)")
]
_Scope = Annotated[str, one_of(SCOPES)]
_Prefix = Annotated[
    str,
    msgspec.Meta(
        pattern=whole(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"),
        description="1-63 lowercase letters, digits or hyphens (not at either end)",
    ),
]


class UiSection(msgspec.Struct, forbid_unknown_fields=True, frozen=True, rename="camel"):
    domain: _Domain
    certificate_arn: _CertificateArn
    groups: dict[_Group, Annotated[list[_Scope], msgspec.Meta(min_length=1)]] = msgspec.field(
        default_factory=lambda: {group: list(scopes) for group, scopes in DEFAULT_GROUPS.items()}
    )
    cognito_domain_prefix: _Prefix = ""  # the hosted UI's https://<prefix>.auth.<region>.amazoncognito.com

    @property
    def url(self) -> str:
        return f"https://{self.domain}"

    def hosted_ui_prefix(self, default: str) -> str:
        """The hosted UI's domain prefix: the configured one, else `default` (the naming convention's)."""
        return self.cognito_domain_prefix or default


def ui_problems(ui: UiSection, region: str, default_prefix: str) -> list[str]:
    """What the types cannot say: the certificate's region, the hosted UI's prefix Cognito would refuse."""
    problems = []
    if ui.certificate_arn.split(":")[3] != region:
        problems.append(f"ui.certificateArn: the certificate must be in the stack's region {region} (a regional API)")
    prefix = ui.hosted_ui_prefix(default_prefix)
    if any(word in prefix for word in _FORBIDDEN_IN_PREFIX):
        problems.append(
            f"ui.cognitoDomainPrefix: Cognito refuses the prefix {prefix!r} (it contains aws, amazon or cognito); "
            "set one without them"
        )
    return problems
