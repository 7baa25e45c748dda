"""What the dashboard writes to Redis: view registrations, one-off requests, alert rules, uploads.

Every write goes through a shared contract (`shared.views`, `shared.alert_rules`, `shared.keys`);
values a user typed travel as Redis arguments, never inside a command string.
"""

from __future__ import annotations

import base64
import secrets
from typing import Any

import orjson
import redis

from services.dashboard import data
from services.dashboard.rules import RuleCommand, RuleDone
from services.dashboard.upload import UploadedPair
from shared import keys
from shared.alert_rules import AlertRule, RuleError, parse_rule, rule_from_dict, validate_rule_id
from shared.health import now_ms
from shared.schemas import AnalyticsRequest
from shared.views import VIEW_TTL_MS

REQUESTS_MAXLEN = 1_000


def register_view(client: redis.Redis, view_id: str) -> None:
    """Ask the analytics worker to serve this view for the next `VIEW_TTL_MS` (renewed while the
    page shows it). Several pages with different views each keep their own member alive."""
    client.zadd(keys.ANALYTICS_VIEWS, {view_id: now_ms() + VIEW_TTL_MS})


def request_adf(client: redis.Redis, view_id: str) -> str:
    """ "Run ADF now": a request on `analytics-requests`; the id of the request entry."""
    entry = client.xadd(
        keys.ANALYTICS_REQUESTS,
        AnalyticsRequest(kind="adf", view=view_id, ts=now_ms()).to_fields(),
        maxlen=REQUESTS_MAXLEN,
        approximate=True,
    )
    return str(entry)


def save_rule(client: redis.Redis, rule_id: str, data: dict[str, Any]) -> AlertRule:
    """Validate with the shared rule validation and store; `RuleError` saying what is wrong."""
    validate_rule_id(rule_id)
    rule = rule_from_dict(data)
    client.hset(keys.ALERT_RULES, rule_id, rule.to_json())
    return rule


def delete_rule(client: redis.Redis, rule_id: str) -> bool:
    """Delete the rule stored under `rule_id`, whatever it holds (also an entry a user added by
    hand under an id the form would refuse); False when there was none."""
    return bool(client.hdel(keys.ALERT_RULES, rule_id))


def set_rule_enabled(client: redis.Redis, rule_id: str, enabled: bool) -> AlertRule:
    raw = client.hget(keys.ALERT_RULES, validate_rule_id(rule_id))
    if raw is None:
        raise RuleError(f"rule {rule_id!r} no longer exists")
    rule = parse_rule(str(raw))
    data = {**rule_to_dict(rule), "enabled": enabled}
    return save_rule(client, rule_id, data)


def run_rule_command(client: redis.Redis, command: RuleCommand) -> RuleDone:
    """Save, toggle or delete a rule; `RuleError` when the rule is not valid."""
    if command.action == "save":
        return RuleDone(saved=save_rule(client, command.rule_id, command.fields))
    if command.action == "toggle":
        current = {row.rule_id: row for row in data.read_rules(client)}
        row = current.get(command.rule_id)
        enable = not (row and row.rule and row.rule.enabled)
        set_rule_enabled(client, command.rule_id, enable)
        return RuleDone(enabled=enable)
    return RuleDone(deleted=delete_rule(client, command.rule_id))


def keep_view(client: redis.Redis, view_id: str) -> None:
    """`register_view`, quiet when Redis is away: the health bar says so, and the page renews
    its view every second."""
    try:
        register_view(client, view_id)
    except redis.RedisError:
        pass


def rule_to_dict(rule: AlertRule) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads(rule.to_json())
    return loaded


def store_upload(client: redis.Redis, pair: UploadedPair) -> str:
    """Keep a parsed upload (base64 of its compressed JSON, as every reply is decoded text) for
    `keys.UPLOAD_TTL_S`; the token the browser keeps."""
    token = secrets.token_hex(16)
    blob = base64.b64encode(pair.to_bytes()).decode("ascii")
    client.set(keys.dashboard_upload(token), blob, ex=keys.UPLOAD_TTL_S)
    return token


def load_upload(client: redis.Redis, token: str) -> UploadedPair | None:
    """The upload behind a token, its lifetime renewed; None once it has expired."""
    key = keys.dashboard_upload(token)
    pipe = client.pipeline(transaction=False)
    pipe.get(key)
    pipe.expire(key, keys.UPLOAD_TTL_S)
    blob, _ = pipe.execute()
    if blob is None:
        return None
    return UploadedPair.from_bytes(base64.b64decode(blob))
