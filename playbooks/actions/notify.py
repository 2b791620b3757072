"""notify: POST the incident to webhooks, as generic JSON or as a Slack-compatible message.

The URL of each webhook is a secret (Slack's carries its token), so it comes from the Secret the
step names, in the policy's namespace, and is never logged nor put in a message. Each POST is
tried up to 3 times, with backoff, on connection errors, 429 and 5xx; any other answer is final.
The idempotency key travels as the `Idempotency-Key` header, for receivers that deduplicate.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from dataclasses import dataclass
from typing import Any

import httpx
from kubernetes.client.exceptions import ApiException

from homeostat import __version__
from homeostat.api.hosts import host_and_port
from homeostat.api.incident import IncidentPhase, InvolvedSeries
from homeostat.api.policy import Webhook, WebhookFormat
from homeostat.playbooks.actions.common import api_failures, is_paused, paused, read_target, result, where
from homeostat.playbooks.base import ActionContext, ActionResult, Outcome

logger = logging.getLogger(__name__)

TRIES = 3
MAX_LISTED = 10  # series named in a Slack message

# httpx logs every request with its URL at INFO ("HTTP Request: POST https://hooks.slack.com/services/T0/B0/token"),
# and httpcore the host at DEBUG: both are silenced while a notification is being sent, and only then.
_SENDING: contextvars.ContextVar[bool] = contextvars.ContextVar("homeostat_notify_sending", default=False)
_CLIENT_LOGGERS = ("httpx", "httpcore", "httpcore.connection", "httpcore.http11", "httpcore.http2",
                   "httpcore.proxy", "httpcore.socks")


class _QuietWhileSending(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not _SENDING.get()


_QUIET = _QuietWhileSending()
for _name in _CLIENT_LOGGERS:
    logging.getLogger(_name).addFilter(_QUIET)


def json_body(ctx: ActionContext, phase: str) -> dict[str, Any]:
    return {
        "incident": ctx.incident, "policy": ctx.policy, "namespace": ctx.namespace,
        "target": ctx.target.to_wire(), "phase": phase, "summary": ctx.summary,
        "involved": [series.to_wire() for series in ctx.involved],
    }


def _escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _series_line(series: InvolvedSeries) -> str:
    labels = ",".join(f"{k}={v}" for k, v in sorted(series.labels.items()))
    line = f"{series.signal}{{{labels}}}" if labels else series.signal
    if series.observed is not None:
        line += f" = {series.observed:g}"
    if series.expected is not None:
        line += f" (expected {series.expected:g})"
    return f"• `{_escape(line)}`"


def slack_body(ctx: ActionContext, phase: str) -> dict[str, Any]:
    """A Slack incoming-webhook message: `text` for notifications, `blocks` for the channel."""
    target = f"{ctx.target.kind} {ctx.namespace}/{ctx.target.name}"
    text = f"[{phase}] {ctx.summary} ({target}, incident {ctx.incident})"
    lines = [_series_line(series) for series in ctx.involved[:MAX_LISTED]]
    if len(ctx.involved) > MAX_LISTED:
        lines.append(f"… and {len(ctx.involved) - MAX_LISTED} more")
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_escape(phase)}*: {_escape(ctx.summary)}"}},
        {"type": "section", "fields": [
            {"type": "mrkdwn", "text": f"*Target*\n{_escape(target)}"},
            {"type": "mrkdwn", "text": f"*Policy*\n{_escape(ctx.policy)}"},
            {"type": "mrkdwn", "text": f"*Incident*\n{_escape(ctx.incident)}"},
            {"type": "mrkdwn", "text": f"*Phase*\n{_escape(phase)}"},
        ]},
    ]
    if lines:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": "*Anomalous*\n" + "\n".join(lines)}})
    return {"text": text, "blocks": blocks}


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """How one webhook went; `status` is the last HTTP status, None when none was received."""

    index: int
    secret: str  # "<name>/<key>": names the webhook without revealing it
    ok: bool
    status: int | None
    tries: int
    error: str = ""

    def describe(self) -> str:
        outcome = f"HTTP {self.status}" if self.status is not None else self.error
        tries = f" after {self.tries} {'try' if self.tries == 1 else 'tries'}" if self.tries else ""
        return f"webhook {self.index} (secret {self.secret}): {outcome}{tries}"


async def _post(client: httpx.AsyncClient, url: str, body: dict[str, Any], *, key: str,
                backoff: float) -> tuple[int | None, str, int]:
    """POST with retries; (last status, error if no answer, tries)."""
    status: int | None = None
    error = ""
    for attempt in range(1, TRIES + 1):
        try:
            response = await client.post(url, json=body, headers={"Idempotency-Key": key})
            status, error = response.status_code, ""
            if status < 500 and status != 429:
                return status, error, attempt
        except httpx.TransportError as exc:  # its text may hold the URL: keep only the kind
            status, error = None, type(exc).__name__
        if attempt < TRIES:
            await asyncio.sleep(backoff * 2 ** (attempt - 1))
    return status, error, TRIES


async def _deliver(ctx: ActionContext, client: httpx.AsyncClient, index: int, hook: Webhook, *, phase: str,
                   backoff: float) -> Delivery:
    ref = hook.url_secret_ref
    secret = f"{ref.name}/{ref.key}"
    url = await ctx.api.read_secret_key(namespace=ctx.namespace, name=ref.name, key=ref.key)
    if url is None:
        return Delivery(index=index, secret=secret, ok=False, status=None, tries=0, error="Secret or key not found")
    url = url.strip()
    if not url.startswith(("http://", "https://")):
        return Delivery(index=index, secret=secret, ok=False, status=None, tries=0, error="not an http(s) URL")
    if ctx.allowed_hosts is not None and not ctx.allowed_hosts.permits(url):
        host, port = host_and_port(url)
        shown = f"{host}:{port}" if port is not None else host
        return Delivery(index=index, secret=secret, ok=False, status=None, tries=0,
                        error=f"host {shown} is not in the operator's allow-list; not sent (ask the operator's "
                              "admin to add it with --allow-host)")
    body = slack_body(ctx, phase) if hook.format == WebhookFormat.SLACK else json_body(ctx, phase)
    status, error, tries = await _post(client, url, body, key=ctx.key, backoff=backoff)
    ok = status is not None and 200 <= status < 300
    delivery = Delivery(index=index, secret=secret, ok=ok, status=status, tries=tries, error=error)
    logger.info("notify %s: %s", ctx.incident, delivery.describe())
    return delivery


async def send(ctx: ActionContext, *, phase: str = IncidentPhase.REMEDIATING, backoff: float = 0.5,
               timeout: float = 10.0) -> ActionResult:
    """Notify every webhook of the step about the incident in `phase` (the runner may pass another)."""
    try:
        if is_paused(await read_target(ctx)):
            return paused(ctx)
    except ApiException as exc:
        if exc.status != 404:  # a vanished target is worth telling about, not a reason to stay quiet
            raise
    hooks = ctx.step.notify.webhooks if ctx.step.notify else []
    if not hooks:
        return result(Outcome.SKIPPED, "no webhooks in notify.webhooks")
    secrets = [f"{h.url_secret_ref.name}/{h.url_secret_ref.key} ({h.format})" for h in hooks]
    if ctx.dry_run:
        return result(Outcome.DRY_RUN, f"would notify {len(hooks)} webhook(s) about {where(ctx)}: {', '.join(secrets)}",
                      webhooks=secrets)
    headers = {"User-Agent": f"homeostat/{__version__}"}
    quiet = _SENDING.set(True)
    try:
        async with httpx.AsyncClient(timeout=timeout, headers=headers, follow_redirects=False) as client:
            deliveries = [await _deliver(ctx, client, i, hook, phase=phase, backoff=backoff)
                          for i, hook in enumerate(hooks)]
    finally:
        _SENDING.reset(quiet)
    changes = {"webhooks": [{"secret": d.secret, "status": d.status, "tries": d.tries} for d in deliveries]}
    failed = [d for d in deliveries if not d.ok]
    if failed:
        return result(Outcome.FAILED, "; ".join(d.describe() for d in failed), **changes)
    return result(Outcome.SUCCEEDED, f"notified {len(deliveries)} webhook(s) about {where(ctx)}", **changes)


@api_failures
async def perform(ctx: ActionContext) -> ActionResult:
    """The playbook step: the incident is being remediated."""
    return await send(ctx)


async def escalation(ctx: ActionContext) -> ActionResult:
    """The notice sent when the incident escalates (the runner's `escalation_notice`).

    Not wrapped in `api_failures`, as the notice has always run: an API error reaches the runner,
    which records a FAILED notice with the exception's text."""
    return await send(ctx, phase=IncidentPhase.ESCALATED)
