"""The dashboard's health reads and `/healthz`, on a real Redis."""

from __future__ import annotations

import pytest
import redis

from services.dashboard.app import build_app, redis_client
from services.dashboard.data import read_health
from shared.config import load_settings
from shared.health import now_ms
from testkit.processes import free_port


def test_read_health_reports_each_service_and_its_age(sync_redis: redis.Redis) -> None:
    sync_redis.hset(
        "health:writer", mapping={"status": "ok", "updated": now_ms() - 2_000, "rows": 7}
    )
    health = read_health(sync_redis)
    assert health.redis_ok
    by_name = {s.service: s for s in health.services}
    assert list(by_name) == ["ingestor", "writer", "analytics", "dashboard"]
    writer = by_name["writer"]
    assert writer.status == "ok"
    assert writer.age_ms is not None and 2_000 <= writer.age_ms < 10_000
    assert writer.counters == {"rows": "7"}
    assert by_name["ingestor"].status == "missing" and by_name["ingestor"].stale


def test_read_health_says_when_redis_is_down() -> None:
    down = redis_client(load_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    health = read_health(down, ["BTCUSDT"])
    assert not health.redis_ok
    assert "Connection refused" in health.redis_error or "connecting" in health.redis_error


@pytest.mark.parametrize("up", [True, False])
def test_healthz(redis_url: str, up: bool) -> None:
    url = redis_url if up else f"redis://127.0.0.1:{free_port()}/0"
    app = build_app(load_settings(redis_url=url))
    response = app.server.test_client().get("/healthz")
    assert response.status_code == (200 if up else 503)
    body = response.get_json()
    assert body["status"] == ("ok" if up else "degraded")
    if up:
        assert set(body["services"]) == {"ingestor", "writer", "analytics", "dashboard"}
