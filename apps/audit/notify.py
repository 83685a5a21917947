"""The chat door: the only module that sends notifications out (STYLE.md §1.2).

Payloads follow DESIGN §13 (the KubeDoor 0.2 formats):

* WeCom ``{"msgtype": "markdown", "markdown": {"content": …}}``, mentions as ``<@userid>`` in the text;
* DingTalk ``{"msgtype": "markdown", "markdown": {"title": …, "text": …}, "at": {"atMobiles": […],
  "isAtAll": …}}``, each mobile also written as ``@mobile`` in the text (DingTalk only highlights
  mentions present in the text);
* Feishu an interactive card with one markdown element, mentions as ``<at id=…></at>``;
* Slack ``{"text": …}``, mentions as ``<@U…>`` (``<!channel>`` for ``all``);
* a generic webhook gets the event itself as JSON (``{"event": {...}, "text": …, "mention": […]}``).

apprise was evaluated and is not used: its Feishu plugin sends ``msg_type: text`` (not a card), its
Slack plugin sends attachments/blocks rather than ``{"text"}``, and neither DingTalk nor WeCom
mentions come out in the shapes above.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx

logger = logging.getLogger(__name__)

WECOM_URL = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={token}"
DINGTALK_URL = "https://oapi.dingtalk.com/robot/send?access_token={token}"
FEISHU_URL = "https://open.feishu.cn/open-apis/bot/v2/hook/{token}"

RESULT_MARK = {"ok": "✅", "error": "❌", "denied": "⛔", "dry_run": "🧪"}


class NotifyError(Exception):
    """A delivery attempt failed (network, timeout, non-2xx, or the chat API said no)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Message:
    """What a notification says, independent of the chat it goes to."""

    title: str
    lines: tuple[str, ...]
    event: dict[str, Any]

    @property
    def markdown(self) -> str:
        return "\n".join((f"**{self.title}**", *self.lines))


def _short(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


# What a summary calls the repeated events of an action ("3 more denials of shop/cart ...").
REPEATED_NOUNS = {"admission.deny": "denials"}


def _window_text(seconds: float) -> str:
    if seconds == 60:
        return "minute"
    if seconds % 60 == 0:
        return f"{seconds / 60:g} minutes"
    return f"{seconds:g} seconds"


def message_for_event(event: Any, *, repeats: int = 0, window_seconds: float = 60) -> Message:
    """Words for one audit event (an ``AuditEvent`` or anything with the same attributes).

    With ``repeats``, the words of a summary: that many more events like this one (the last of
    them) happened within ``window_seconds`` and were not sent one by one.
    """
    target = "/".join(part for part in (event.cluster, event.namespace, event.name) if part)
    title = f"KubeDoor {event.action}" + (f" {target}" if target else "")
    mark = RESULT_MARK.get(event.result)
    lines = []
    if repeats:
        noun = REPEATED_NOUNS.get(event.action, f"{event.action} events")
        obj = "/".join(part for part in (event.namespace, event.name) if part) or target
        title += f": {repeats} more"
        lines.append(f"- {repeats} more {noun} of {obj} in the last {_window_text(window_seconds)}")
    lines += [
        f"- result: {mark} {event.result}" if mark else f"- result: {event.result}",
        f"- by: {event.actor_name} ({event.source})",
        f"- at: {event.at.isoformat(timespec='seconds')}" + (" (the last one)" if repeats else ""),
    ]
    if event.before not in (None, {}):
        lines.append(f"- before: {_short(event.before)}")
    if event.after not in (None, {}):
        lines.append(f"- after: {_short(event.after)}")
    if event.message:
        lines.append(f"- message: {event.message}")
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
    return Message(title=title, lines=tuple(lines), event=data)


def payload_for(*, kind: str, message: Message, mentions: list[str]) -> dict[str, Any]:
    """The exact JSON body each chat expects (DESIGN §13)."""
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
        return {"text": text + ("\n" + " ".join(tags) if tags else "")}
    if kind == "webhook":
        return {"event": message.event, "text": text, "mention": mentions}
    raise ValueError(f"unknown channel kind {kind!r}")


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
