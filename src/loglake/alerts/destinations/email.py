"""E-mail over SMTP: plain text and HTML alternatives, the subject with level and title, and a
Message-ID made from the delivery's idempotency key, the same on every attempt (so a mail system
that keeps Message-IDs shows a repeat as the same message). STARTTLS, implicit TLS and login as
configured. A 4xx reply is retried, a 5xx one (a refused sender or recipient) is not."""

from __future__ import annotations

import html
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Annotated, ClassVar

import msgspec

from loglake.alerts.destinations.base import DeliveryFailed, DestinationConfig, Notice, SendContext
from loglake.alerts.secrets import SecretRef, TextOrSecret
from loglake.config_files import whole

EMAIL_EVENTS = ("trigger", "resolve")
EVIDENCE_LINES = 20

Address = Annotated[str, msgspec.Meta(pattern=whole(r"[^@\s<>]+@[^@\s<>]+"), description="an e-mail address")]
HostPort = Annotated[
    str, msgspec.Meta(pattern=whole(r"[A-Za-z0-9.\[\]:-]+:\d{1,5}"), description="host:port, such as smtp.example:587")
]


class Email(DestinationConfig, frozen=True, forbid_unknown_fields=True, kw_only=True, rename={"sender": "from"}):
    type_name: ClassVar[str] = "email"
    default_events: ClassVar[tuple[str, ...]] = EMAIL_EVENTS

    smtp: HostPort
    sender: Address
    to: Annotated[list[Address], msgspec.Meta(min_length=1)]
    starttls: bool = False  # upgrade the connection (port 587)
    ssl: bool = False  # TLS from the first byte (port 465)
    username: TextOrSecret | None = None
    password: SecretRef | None = None
    ca_file: str | None = None  # a private CA to trust (PEM), beside the system's

    def problems(self) -> list[tuple[str, str]]:
        found = []
        if self.starttls and self.ssl:
            found.append(("starttls", "choose one of starttls (port 587) and ssl (port 465)"))
        if self.ca_file is not None and not (self.starttls or self.ssl):
            found.append(("ca_file", "is used only with starttls or ssl"))
        if (self.username is None) != (self.password is None):
            found.append(
                ("password" if self.password is None else "username", "login needs both username and password")
            )
        return found

    def send(self, notice: Notice, context: SendContext) -> str | None:
        message = email_message(notice, self.sender, self.to)
        host, _, port = self.smtp.rpartition(":")
        host = host.strip("[]")
        timeout = context.timeout
        try:
            tls = ssl.create_default_context()
            if self.ca_file is not None:
                tls.load_verify_locations(cafile=self.ca_file)
            if self.ssl:
                smtp = smtplib.SMTP_SSL(host, int(port), timeout=timeout, context=tls)
            else:
                smtp = smtplib.SMTP(host, int(port), timeout=timeout)
            with smtp:
                if self.starttls:
                    smtp.starttls(context=tls)
                if self.username is not None and self.password is not None:
                    smtp.login(context.secret(self.username), context.secret(self.password))
                refused = smtp.send_message(message)
            context.status = 250  # smtplib raises SMTPDataError for any other reply to the message
            if refused:  # (only when every recipient is refused does smtplib raise) sent again, it would repeat
                # to the others: it went, and says who did not get it
                who = ", ".join(f"{address} ({code})" for address, (code, _) in refused.items())
                context.warning = (
                    f"the SMTP server refused {len(refused)} of {len(self.to)} recipients, who did not get it: {who}"
                )
        except smtplib.SMTPRecipientsRefused as e:
            codes = [code for code, _ in e.recipients.values()]
            raise DeliveryFailed(
                f"every recipient was refused ({', '.join(map(str, codes))})",
                retryable=any(400 <= c < 500 for c in codes),
                status=codes[0] if codes else None,
            ) from None
        except smtplib.SMTPResponseException as e:
            text = e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
            raise DeliveryFailed(
                f"SMTP {e.smtp_code}: {text}", retryable=e.smtp_code < 500, status=e.smtp_code
            ) from None
        except smtplib.SMTPNotSupportedError as e:
            raise DeliveryFailed(f"the SMTP server does not support it: {e}", retryable=False) from None
        except (smtplib.SMTPException, OSError) as e:  # disconnected, refused, timed out, TLS failures
            raise DeliveryFailed(f"{type(e).__name__}: {e}", retryable=True) from None
        return None


def email_message(notice: Notice, sender: str, to: list[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = notice.headline
    message["From"] = sender
    message["To"] = ", ".join(to)
    message["Date"] = formatdate(notice.at_ms / 1000, usegmt=True)
    message["Message-ID"] = f"<{notice.key}@loglake>"
    message["X-Loglake-Event"] = notice.kind
    facts = notice.facts()
    lines = notice.evidence_lines(EVIDENCE_LINES)
    runbook = notice.alert["runbook"]
    text = [notice.headline, ""]
    text += [f"{label}: {value}" for label, value in facts]
    if runbook:
        text += ["", f"Runbook: {runbook}"]
    if lines:
        text += ["", f"Evidence ({len(notice.alert['evidence'])} records kept):", *lines]
    text += ["", f"loglake alert {notice.alert['id']}", "", "Query:", notice.alert["query"]]
    message.set_content("\n".join(text) + "\n")
    rows = "".join(
        f"<tr><th align='left'>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>" for label, value in facts
    )
    parts = [f"<h2>{html.escape(notice.headline)}</h2>", f"<table>{rows}</table>"]
    if runbook:
        parts.append(f"<p><a href='{html.escape(runbook, quote=True)}'>Runbook</a></p>")
    if lines:
        parts.append(f"<h3>Evidence</h3><pre>{html.escape(chr(10).join(lines))}</pre>")
    parts.append(f"<h3>Query</h3><pre>{html.escape(notice.alert['query'])}</pre>")
    message.add_alternative("<html><body>" + "".join(parts) + "</body></html>\n", subtype="html")
    return message
