"""A counting semaphore in Redis (the Celery broker) that bounds the chunks querying one metrics backend.

Every worker process of every host shares it, keyed by the backend's URL: two clusters on the same
Prometheus share its slots. A slot is a member of a sorted set scored by its expiry; a holder renews
it on every query, so the slot of a worker that died frees itself after the lease. Acquire and renew
are single Lua scripts (atomic in Redis). Without a Redis broker (the embedded file broker of a
single process) there is nothing to share and every acquire succeeds.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from functools import cache

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "kubedoor:backend-slots:"
# KEYS[1] the set; ARGV: now, limit, expiry, token, key TTL. Drops expired slots, then takes one if free.
ACQUIRE_LUA = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZSCORE', KEYS[1], ARGV[4]) or redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  return 1
end
return 0
"""
# KEYS[1] the set; ARGV: new expiry, token, now. Renews a slot still held, never one that has expired
# (its place may have been lent to another chunk already).
RENEW_LUA = """
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[2])
if expiry and tonumber(expiry) > tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], 'XX', ARGV[1], ARGV[2])
  return 1
end
return 0
"""


@cache
def _client() -> redis.Redis | None:
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return None
    return redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=10)


def slot_key(backend_url: str) -> str:
    return KEY_PREFIX + hashlib.sha256(backend_url.rstrip("/").encode()).hexdigest()[:32]


class BackendSlot:
    """One slot of ``backend_url``'s semaphore, held by one chunk; ``acquire`` returns whether it got it."""

    def __init__(self, backend_url: str, *, limit: int, lease_seconds: int) -> None:
        self.key = slot_key(backend_url)
        self.limit = max(1, limit)
        self.lease_seconds = max(1, lease_seconds)
        self.token = uuid.uuid4().hex
        self.backend_url = backend_url

    def acquire(self) -> bool:
        client = _client()
        if client is None:
            return True
        now = time.time()
        got = client.eval(
            ACQUIRE_LUA, 1, self.key, now, self.limit, now + self.lease_seconds, self.token, self.lease_seconds * 4
        )
        return bool(got)

    def renew(self) -> bool:
        """Extend the lease; ``False`` when the slot had already expired (it is not taken back)."""
        client = _client()
        if client is None:
            return True
        now = time.time()
        return bool(client.eval(RENEW_LUA, 1, self.key, now + self.lease_seconds, self.token, now))

    def release(self) -> None:
        client = _client()
        if client is not None:
            client.zrem(self.key, self.token)


def slots_held(backend_url: str) -> int:
    """Slots currently held (expired ones excluded) — for tests and the bench."""
    client = _client()
    if client is None:
        return 0
    return int(client.zcount(slot_key(backend_url), time.time(), "+inf"))
