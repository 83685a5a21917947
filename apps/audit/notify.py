"""The chat door: the only module that sends notifications out (STYLE.md §1.2).

Payloads follow DESIGN §13 (the KubeDoor 0.2 formats):

* WeCom ``{"msgtype": "markdown", "markdown": {"content": …}}``, mentions as ``<@userid>`` in the text;
* DingTalk ``{"msgtype": "markdown", "markdown": {"title": …, "text": …}, "at": {"atMobiles": […],
  "isAtAll": …}}``, each mobile also written as ``@mobile`` in the text (DingTalk only highlights
  mentions present in the text);
* Feishu an interactive card with one markdown element, mentions as ``<at id=…></at>``;
* Slack ``{"text": …}`` in Slack's own mrkdwn (``*bold*``, escaped ``&<>``), mentions as ``<@U…>``
  (``<!channel>`` for ``all``);
* a generic webhook gets the event itself as JSON (``{"event": {...}, "text": …, "mention": […]}``).

apprise was evaluated and is not used: its Feishu plugin sends ``msg_type: text`` (not a card), its
Slack plugin sends attachments/blocks rather than ``{"text"}``, and neither DingTalk nor WeCom
mentions come out in the shapes above.

A DingTalk or Feishu robot may have a signing secret (``signed``: each robot's documented
HMAC-SHA256 of the timestamp and the secret) and keyword checks (``Message.with_keyword``). The text
is in the channel's language (the caller activates it), times in the event's cluster's time zone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus
from zoneinfo import ZoneInfo

import httpx
from django.utils.translation import gettext, gettext_lazy

logger = logging.getLogger(__name__)

WECOM_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={token}"
DINGTALK_URL = "https://oapi.dingtalk.com/robot/send?access_token={token}"
FEISHU_URL = "https://open.feishu.cn/open-apis/bot/v2/hook/{token}"

RESULT_MARK = {"ok": "✅", "error": "❌", "denied": "⛔", "dry_run": "🧪"}
# The same words as AuditResult's labels (so one translation serves both); the door imports no model.
RESULT_WORDS = {"ok": gettext_lazy("ok"), "error": gettext_lazy("error"), "denied": gettext_lazy("denied")}
SIGNED_KINDS = ("dingtalk", "feishu")


class NotifyError(Exception):
    """A delivery attempt failed (network, timeout, non-2xx, or the chat API said no)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Line:
    """One line of a message: ``label: value`` (a bare ``value`` without a label); ``code`` for JSON."""

    label: str
    value: str
    code: bool = False


@dataclass(frozen=True)
class Message:
    """What a notification says, independent of the chat it goes to, in the words of one language."""

    title: str
    body: tuple[Line, ...]
    event: dict[str, Any]

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(f"- {line.label}: {line.value}" if line.label else f"- {line.value}" for line in self.body)

    @property
    def markdown(self) -> str:
        """The Markdown WeCom, DingTalk and Feishu render (``**bold**``, ``-`` items)."""
        return "\n".join((f"**{self.title}**", *self.lines))

    @property
    def slack_mrkdwn(self) -> str:
        """Slack's own mrkdwn: ``*bold*``, ``&``/``<``/``>`` escaped, JSON values as inline code."""
        lines = [f"*{_slack_escape(self.title)}*"]
        for line in self.body:
            value = _slack_escape(line.value)
            if line.code:
                value = f"`{value}`"
            lines.append(f"• {_slack_escape(line.label)}: {value}" if line.label else f"• {value}")
        return "\n".join(lines)

    def with_keyword(self, keyword: str) -> Message:
        """The message with ``keyword`` in its title when its text lacks it (a DingTalk or Feishu robot
        with a keyword check drops every message that does not contain one of its keywords)."""
        if not keyword or keyword in self.markdown:
            return self
        return Message(title=f"[{keyword}] {self.title}", body=self.body, event=self.event)


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _short(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def _repeated_noun(action: str) -> str:
    """What a summary calls the repeated events of an action ("3 more denials of shop/cart ...")."""
    if action == "admission.deny":
        return gettext("denials")
    return gettext("%(action)s events") % {"action": action}


def _window_text(seconds: float) -> str:
    if seconds == 60:
        return gettext("minute")
    if seconds % 60 == 0:
        return gettext("%(count)s minutes") % {"count": f"{seconds / 60:g}"}
    return gettext("%(count)s seconds") % {"count": f"{seconds:g}"}


def message_for_event(event: Any, *, repeats: int = 0, window_seconds: float = 60, time_zone: str = "UTC") -> Message:
    """Words for one audit event (an ``AuditEvent`` or anything with the same attributes), in the
    active language (the caller chooses it with ``translation.override``); the event's time in
    ``time_zone`` (its cluster's).

    With ``repeats``, the words of a summary: that many more events like this one (the last of
    them) happened within ``window_seconds`` and were not sent one by one.
    """
    target = "/".join(part for part in (event.cluster, event.namespace, event.name) if part)
    title = f"KubeDoor {event.action}" + (f" {target}" if target else "")
    mark = RESULT_MARK.get(event.result)
    result = str(RESULT_WORDS.get(event.result, event.result))
    at = event.at.astimezone(ZoneInfo(time_zone)).isoformat(timespec="seconds")
    body: list[Line] = []
    if repeats:
        obj = "/".join(part for part in (event.namespace, event.name) if part) or target
        title += ": " + gettext("%(count)s more") % {"count": repeats}
        text = gettext("%(count)s more %(noun)s of %(object)s in the last %(window)s") % {
            "count": repeats,
            "noun": _repeated_noun(event.action),
            "object": obj,
            "window": _window_text(window_seconds),
        }
        body.append(Line("", text))
    body += [
        Line(gettext("result"), f"{mark} {result}" if mark else result),
        Line(gettext("by"), f"{event.actor_name} ({event.source})"),
        Line(gettext("at"), at + (" " + gettext("(the last one)") if repeats else "")),
    ]
    if event.before not in (None, {}):
        body.append(Line(gettext("before"), _short(event.before), code=True))
    if event.after not in (None, {}):
        body.append(Line(gettext("after"), _short(event.after), code=True))
    if event.message:
        body.append(Line(gettext("message"), event.message))
    data = {
        "id": event.pk,
        "at": event.at.isoformat(),
        "actor": event.actor_name,
        "source": event.source,
        "action": event.action,
        "cluster": event.cluster,
        "namespace": event.namespace,
        "name": event.name,
        "before": event.before,
        "after": event.after,
        "result": event.result,
        "message": event.message,
        "request_id": event.request_id,
    }
    if repeats:
        data["repeats"] = repeats
    return Message(title=title, body=tuple(body), event=data)


def payload_for(*, kind: str, message: Message, mentions: list[str], keyword: str = "") -> dict[str, Any]:
    """The exact JSON body each chat expects (DESIGN §13); ``keyword`` is put in the title when missing."""
    message = message.with_keyword(keyword)
    at_all = any(m.lower() == "all" for m in mentions)
    people = [m for m in mentions if m.lower() != "all"]
    text = message.markdown
    if kind == "wecom":
        tags = [f"<@{m}>" for m in people] + (["<@all>"] if at_all else [])
        content = text + ("\n" + " ".join(tags) if tags else "")
        return {"msgtype": "markdown", "markdown": {"content": content}}
    if kind == "dingtalk":
        tags = [f"@{m}" for m in people]
        body = text + ("\n" + " ".join(tags) if tags else "")
        return {
            "msgtype": "markdown",
            "markdown": {"title": message.title, "text": body},
            "at": {"atMobiles": people, "isAtAll": at_all},
        }
    if kind == "feishu":
        tags = [f"<at id={m}></at>" for m in people] + (["<at id=all></at>"] if at_all else [])
        content = text + ("\n" + " ".join(tags) if tags else "")
        return {
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": True},
                "header": {"title": {"tag": "plain_text", "content": message.title}},
                "elements": [{"tag": "markdown", "content": content}],
            },
        }
    if kind == "slack":
        tags = [f"<@{m}>" for m in people] + (["<!channel>"] if at_all else [])
        return {"text": message.slack_mrkdwn + ("\n" + " ".join(tags) if tags else "")}
    if kind == "webhook":
        return {"event": message.event, "text": text, "mention": mentions}
    raise ValueError(f"unknown channel kind {kind!r}")


def dingtalk_sign(*, secret: str, timestamp_ms: int) -> str:
    """DingTalk's robot signature: base64(HMAC-SHA256(key=secret, msg="{timestamp}\\n{secret}")),
    URL-encoded; the timestamp in milliseconds."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


def feishu_sign(*, secret: str, timestamp_s: int) -> str:
    """Feishu's bot signature: base64(HMAC-SHA256(key="{timestamp}\\n{secret}", msg=empty)); seconds."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def signed(*, kind: str, url: str, payload: dict[str, Any], secret: str, now: float) -> tuple[str, dict[str, Any]]:
    """The URL and body of a request to a robot with a signing secret (DingTalk: ``timestamp`` and
    ``sign`` query parameters; Feishu: ``timestamp`` and ``sign`` in the body); unchanged without one."""
    if not secret or kind not in SIGNED_KINDS:
        return url, payload
    if kind == "dingtalk":
        timestamp_ms = int(now * 1000)
        separator = "&" if "?" in url else "?"
        return (
            f"{url}{separator}timestamp={timestamp_ms}&sign={dingtalk_sign(secret=secret, timestamp_ms=timestamp_ms)}",
            payload,
        )
    timestamp_s = int(now)
    return url, {"timestamp": str(timestamp_s), "sign": feishu_sign(secret=secret, timestamp_s=timestamp_s), **payload}


def channel_url(*, kind: str, target: str) -> str:
    """The URL to POST to: ``target`` itself when it is a URL, else the chat's robot URL for the token."""
    if target.startswith(("http://", "https://")):
        return target
    templates = {"wecom": WECOM_URL, "dingtalk": DINGTALK_URL, "feishu": FEISHU_URL}
    if kind not in templates:
        raise NotifyError(f"a {kind} channel needs a full URL")
    return templates[kind].format(token=target)


def _chat_refused(body: Any) -> str | None:
    """WeCom/DingTalk answer HTTP 200 with ``errcode``; Feishu with ``code``/``StatusCode``."""
    if not isinstance(body, dict):
        return None
    for key in ("errcode", "code", "StatusCode"):
        value = body.get(key)
        if isinstance(value, int) and value != 0:
            return f"{key} {value}: {body.get('errmsg') or body.get('msg') or body.get('StatusMessage') or ''}".strip()
    return None


def send(*, url: str, payload: dict[str, Any], timeout: float) -> None:
    """POST ``payload`` as JSON; raise ``NotifyError`` with a readable reason on any failure."""
    try:
        response = httpx.post(url, json=payload, timeout=timeout, follow_redirects=False)
    except httpx.TimeoutException as exc:
        raise NotifyError(f"no answer within {timeout:g} s") from exc
    except httpx.HTTPError as exc:
        raise NotifyError(f"cannot reach the chat endpoint ({exc.__class__.__name__}: {exc})") from exc
    if not 200 <= response.status_code < 300:
        raise NotifyError(f"HTTP {response.status_code}: {response.text[:200]}")
    try:
        body = response.json()
    except ValueError:
        return
    refused = _chat_refused(body)
    if refused:
        raise NotifyError(f"refused by the chat API ({refused})")
