"""Component ids, in one place so layout and callbacks cannot disagree."""

HEALTH_TICK = "health-tick"
HEALTH_BAR = "health-bar"
REDIS_STATUS = "redis-status"
