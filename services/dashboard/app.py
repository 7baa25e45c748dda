"""The Dash app factory: layout, callbacks and the `/healthz` route. Nothing runs at import."""

from __future__ import annotations

import redis
from dash import Dash
from flask import Flask, Response, jsonify
from redis.backoff import ConstantBackoff
from redis.retry import Retry

from services.dashboard.callbacks import register_callbacks
from services.dashboard.data import read_health
from services.dashboard.layout import build_layout
from services.dashboard.push import register_push
from services.dashboard.recent import RecentEntries
from shared.config import Settings
from shared.redis_io import ENCODING_ERRORS

REQUEST_OVERHEAD = 4 / 3 * 1.05
"""An upload travels base64-encoded inside a JSON callback request."""


def redis_client(settings: Settings) -> redis.Redis:
    """The dashboard's synchronous client (Dash callbacks run in waitress threads): short
    timeouts and one quick retry, so a missing Redis shows as a banner within a second instead
    of holding every callback through redis-py's default backoff."""
    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        encoding_errors=ENCODING_ERRORS,
        socket_connect_timeout=0.5,
        socket_timeout=2.0,
        health_check_interval=10,
        retry=Retry(ConstantBackoff(0.05), 1),
    )


def build_app(settings: Settings, recent: RecentEntries | None = None) -> Dash:
    """The app; `recent` is the cache of parsed entries its full renders read through (its own
    when not given)."""
    client = redis_client(settings)
    # compress: a full render's typed arrays (about 430 kB) travel as brotli or gzip.
    app = Dash(__name__, title="Pairs monitor", update_title="", compress=True)
    app.layout = build_layout(settings)
    register_callbacks(app, client, settings, RecentEntries() if recent is None else recent)

    server: Flask = app.server
    server.config["COMPRESS_STREAMS"] = False  # a compressed event stream would be buffered
    if settings.dash_push_max_clients:
        register_push(server, settings)
    upload_bytes = settings.dash_upload_max_mb * 1_048_576
    server.config["MAX_CONTENT_LENGTH"] = int(upload_bytes * REQUEST_OVERHEAD) + 1_048_576

    @server.route("/healthz")
    def healthz() -> tuple[Response, int]:
        health = read_health(client)
        body = {
            "status": "ok" if health.redis_ok else "degraded",
            "redis": "ok" if health.redis_ok else health.redis_error,
            "services": {
                s.service: {"status": s.status, "age_ms": s.age_ms} for s in health.services
            },
        }
        return jsonify(body), 200 if health.redis_ok else 503

    return app
