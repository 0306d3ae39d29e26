"""SigmaHQ's rules as published, loaded unchanged and run over crafted records: web server rules
(`category: webserver`, Sigma's web field names) read the Amplify access logs, and application log rules
name attributes by their bare keys. Which records match is written here by hand.

The rules' texts are SigmaHQ's (https://github.com/SigmaHQ/sigma), under the Detection Rule License
(DRL) 1.1 (https://github.com/SigmaHQ/Detection-Rule-License), by their authors as each text says:
- rules/web/sql_injection_keywords.yml (Saw Win Naung), at commit 01dc930c173e329c191245b76f05de5fa4b5da21;
- rules/web/web_citrix_cve_2019_19781_exploit.yml (Arnim Rupp, Florian Roth), at commit
  5c86afffb77f8a3900fd361388d48d75f1db07b4;
- rules/web/webserver_generic/web_susp_useragents.yml (Nasreddine Bencherchali, Tim Shelton, Mayank
  Patel), at commit 0b5c2349b0eda5f23a3dd206faceafa2da695c22;
- rules/web/webserver_generic/web_spring_boot_actuator_heapdump_access.yml (Binautopsy Labs), at commit
  97cf982c78eb7815a9640f90913951a6afaada50 (its long description shortened here).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loglake.lake.tables import AMPLIFY_ACCESS_TABLE, APP_LOGS_TABLE
from loglake.rules.run import run_rule
from loglake.rules.testing import Placed, ScratchLake
from loglake.times import parse_iso8601
from tests.rules.conftest import load_one

DAY = parse_iso8601("2026-03-02T00:00:00Z")
NEXT_DAY = DAY + 86_400_000

CITRIX, SQLI, SCANNER, WEB_PAGE, HEAD = "198.51.100.1", "203.0.113.9", "198.51.100.3", "198.51.100.4", "198.51.100.5"
ACCESS = [  # amplify_access rows by column; each viewer (c_ip) names its row
    {
        "c_ip": CITRIX,
        "cs_method": "POST",
        "cs_uri_stem": "/vpn/../vpns/portal/scripts/newbm.pl",
        "x_host_header": "shop.example.com",
        "cs_user_agent": "curl/7.68.0",
    },
    {"c_ip": SQLI, "cs_method": "GET", "cs_uri_stem": "/products", "cs_uri_query": "id=union select password"},
    {
        "c_ip": SCANNER,
        "cs_method": "GET",
        "cs_uri_stem": "/actuator/heapdump",
        "cs_user_agent": "gobuster/3.6",
        "cs_protocol_version": "HTTP/2.0",
    },
    {
        "c_ip": WEB_PAGE,
        "cs_method": "GET",
        "cs_uri_stem": "/index.html",
        "cs_uri_query": "lang=en",
        "cs_referer": "https://ref.example/",
        "cs_user_agent": "Mozilla/5.0",
    },
    {"c_ip": HEAD, "cs_method": "HEAD", "cs_uri_stem": "/actuator/heapdump", "cs_user_agent": "Mozilla/5.0"},
]
RECORDS = [  # application log records; each message names its record
    {
        "service": "auth",
        "message": "login failed",
        "attributes": {"ip": "10.1.2.3", "http": {"status": 500}, "service": "other"},
    },
    {"service": "other", "message": "login ok", "attributes": {"ip": "10.9.9.9"}},
    # as OTLP stores OpenTelemetry's attributes: flat keys with dots in them
    {"service": "otel", "message": "otel denied", "attributes": {"http.status": 401, "user.id": "u7"}},
]

SQL_INJECTION_KEYWORDS = """
title: Detect Sql Injection By Keywords
id: 5513deaf-f49a-46c2-a6c8-3f111b5cb453
status: test
description: Detects sql injection that use GET requests by keyword searches in URL strings
author: Saw Win Naung
date: 2020/02/22
modified: 2021/11/27
logsource:
  category: webserver
detection:
  keywords:
    - '=select'
    - '=union'
    - '=concat'
  condition: keywords
fields:
  - client_ip
  - vhost
  - url
  - response
falsepositives:
  - Java scripts and CSS Files
  - User searches in search boxes of the respective website
level: high
"""
CITRIX_CVE_2019_19781 = """
title: Citrix Netscaler Attack CVE-2019-19781
id: ac5a6409-8c89-44c2-8d64-668c29a2d756
status: experimental
description: Detects CVE-2019-19781 exploitation attempt against Citrix Netscaler, Application Delivery Controller and Citrix Gateway Attack
author: Arnim Rupp, Florian Roth
date: 2020/01/02
modified: 2020/09/03
references:
    - https://support.citrix.com/article/CTX267679
    - https://support.citrix.com/article/CTX267027
    - https://isc.sans.edu/diary/25686
    - https://twitter.com/mpgn_x64/status/1216787131210829826
    - https://github.com/x1sec/x1sec.github.io/blob/master/CVE-2019-19781-DFIR.md
logsource:
    category: webserver
    definition: 'Make sure that your Netscaler appliance logs all kinds of attacks (test with http://your-citrix-gw.net/robots.txt). The directory traversal with ../ might not be needed on certain cloud instances or for authenticated users, so we also check for direct paths. All scripts in portal/scripts are exploitable except logout.pl.'
detection:
    selection:
        c-uri:
            - '*/../vpns/*'
            - '*/vpns/cfg/smb.conf'
            - '*/vpns/portal/scripts/*.pl*'
    condition: selection
fields:
    - client_ip
    - vhost
    - url
    - response
falsepositives:
    - Unknown
level: critical
tags:
    - attack.initial_access
    - attack.t1190
"""  # noqa: E501 (the rule's text as published)
SUSPICIOUS_USER_AGENTS = """
title: Suspicious User-Agents Related To Recon Tools
id: 19aa4f58-94ca-45ff-bc34-92e533c0994a
status: test
description: Detects known suspicious (default) user-agents related to scanning/recon tools
references:
    - https://github.com/wpscanteam/wpscan/blob/196fbab5b1ce3870a43515153d4f07878a89d410/lib/wpscan/browser.rb
    - https://github.com/xmendez/wfuzz/blob/1b695ee9a87d66a7d7bf6cae70d60a33fae51541/docs/user/basicusage.rst
    - https://github.com/lanmaster53/recon-ng/blob/9e907dfe09fce2997f0301d746796408e01a60b7/recon/core/base.py#L92
    - https://github.com/ffuf/ffuf/blob/ce3cf6bd733a24d3a9f024305234c1a6298198eb/pkg/runner/simple.go
    - https://github.com/OJ/gobuster/blob/d20300cc46096984565e82fb73a45bf8d281b990/libgobuster/helpers.go
    - https://github.com/epi052/feroxbuster/blob/ffdf871abe0a358a1531ba4135e208d4dbe8fc31/src/config/utils.rs
author: Nasreddine Bencherchali (Nextron Systems), Tim Shelton, Mayank Patel
date: 2022-07-19
modified: 2026-06-09
tags:
    - attack.initial-access
    - attack.t1190
logsource:
    category: webserver
detection:
    selection:
        cs-user-agent|contains:
            # Add more tools as you see fit
            - 'feroxbuster/'
            - 'Fuzz Faster U Fool'
            - 'GIS - AppSec Team - Project Vision'
            - 'gobuster/'
            - 'Recon-ng/v'
            - 'Wfuzz/'
            - 'WPScan v'
    condition: selection
falsepositives:
    - Unknown
level: medium
"""
HEAPDUMP_ACCESS = """
title: Spring Boot Actuator Heapdump Endpoint Access
id: 1284caf8-e63a-4789-a71f-f5aeeb9fa4d0
status: experimental
description: |
    Detects HTTP requests to the Spring Boot Actuator `/actuator/heapdump`
    endpoint, which streams a Java HPROF heap dump.
references:
    - https://spring.io/security/cve-2026-40976/
    - https://docs.spring.io/spring-boot/reference/actuator/endpoints.html#actuator.endpoints.heapdump
    - https://binautopsy.com/research/cve-2026-40976/
author: Binautopsy Labs
date: 2026-04-28
tags:
    - attack.credential-access
    - attack.t1552.001
    - attack.t1003
    - cve.2026-40976
logsource:
    category: webserver
detection:
    selection:
        cs-method: 'GET'
        cs-uri-stem|endswith: '/actuator/heapdump'
    condition: selection
falsepositives:
    - Internal SRE manually capturing a heap dump for debugging. Should be
      infrequent (less than one request per deployment per month);
      correlate with a known operator IP.
    - Commercial APMs that automatically pull heap dumps on
      out-of-memory suspicion. Allowlist by the APM agent's source IP.
level: high
"""


@pytest.fixture(scope="module")
def lake(scratch: ScratchLake) -> ScratchLake:
    scratch.add(AMPLIFY_ACCESS_TABLE.name, [Placed(i, DAY + i * 60_000, r) for i, r in enumerate(ACCESS)], NEXT_DAY)
    scratch.add(APP_LOGS_TABLE.name, [Placed(i, DAY + i * 60_000, r) for i, r in enumerate(RECORDS)], NEXT_DAY)
    return scratch


def matched(lake: ScratchLake, folder: Path, text: str, label: str = "c_ip") -> set:
    rule = load_one(folder, text)
    result = run_rule(rule, lake.engine, DAY, NEXT_DAY, now_ms=NEXT_DAY)
    return {row[label] for match in result.matches for row in match.evidence}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (SQL_INJECTION_KEYWORDS, {SQLI}),  # keywords: in the request's URL, its query included
        (CITRIX_CVE_2019_19781, {CITRIX}),  # c-uri: the path and the query
        (SUSPICIOUS_USER_AGENTS, {SCANNER}),
        (HEAPDUMP_ACCESS, {SCANNER}),  # not the HEAD request
    ],
    ids=["sql_injection_keywords", "web_citrix_cve_2019_19781_exploit", "web_susp_useragents", "heapdump_access"],
)
def test_sigmahq_web_rules_read_the_amplify_access_logs(text: str, expected: set, lake: ScratchLake, tmp_path: Path):
    assert matched(lake, tmp_path, text) == expected


WEB_RULE = """
title: a web rule
id: 11111111-2222-4333-8444-555555555555
level: low
logsource: {{category: webserver}}
detection: {{sel: {{{selection}}}, condition: sel}}
"""


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ("c-uri-path|endswith: /heapdump", {SCANNER, HEAD}),
        ("c-uri-stem: /index.html", {WEB_PAGE}),
        ("c-uri-query|contains: union", {SQLI}),
        ("c-uri|endswith: '?lang=en'", {WEB_PAGE}),
        ("c-useragent|startswith: gobuster", {SCANNER}),
        ("cs-referrer: 'https://ref.example/'", {WEB_PAGE}),
        ("cs-version: HTTP/2.0", {SCANNER}),
        ("r-dns: shop.example.com", {CITRIX}),
        ("src_ip|cidr: 203.0.113.0/24", {SQLI}),
    ],
)
def test_sigmas_web_field_names_mean_cloudfronts_columns(selection: str, expected: set, lake, tmp_path: Path):
    assert matched(lake, tmp_path, WEB_RULE.format(selection=selection)) == expected


APP_RULE = """
title: an application log rule
id: 11111111-2222-4333-8444-555555555556
level: low
logsource: {{product: loglake, service: app_logs}}
detection: {{sel: {{{selection}}}, condition: sel}}
loglake: {{group_by: [{group}]}}
"""


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ("ip: 10.1.2.3", {"login failed"}),  # attributes.ip
        ("http.status: 500", {"login failed"}),  # attributes.http.status
        ("service: other", {"login ok"}),  # a column keeps its name: not attributes.service
        ("http.status: 401", {"otel denied"}),  # the flat key "http.status", where no nested value is
        ("attributes.user.id: u7", {"otel denied"}),
        ("user.id|exists: true", {"otel denied"}),
        ("http.status|exists: true", {"login failed", "otel denied"}),
    ],
)
def test_a_bare_name_on_application_logs_is_an_attribute_unless_a_column(
    selection: str, expected: set, lake: ScratchLake, tmp_path: Path
) -> None:
    text = APP_RULE.format(selection=selection, group="service")
    assert matched(lake, tmp_path, text, label="message") == expected


def test_a_group_by_of_a_bare_attribute_name(lake: ScratchLake, tmp_path: Path) -> None:
    rule = load_one(tmp_path, APP_RULE.format(selection="message|startswith: login", group="ip"))
    result = run_rule(rule, lake.engine, DAY, NEXT_DAY, now_ms=NEXT_DAY)
    assert sorted(m.group["ip"] for m in result.matches) == ["10.1.2.3", "10.9.9.9"]
