"""The real-Redis helper: a missing binary is a clear failure, never a silent skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.stores import RedisServer, RedisServerNotFound, find_redis_server


def test_a_missing_redis_server_says_to_run_make_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_SERVER", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr("os.access", lambda path, mode: False)

    with pytest.raises(RedisServerNotFound, match="make redis"):
        find_redis_server()


def test_an_explicit_binary_that_is_not_executable_is_named(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REDIS_SERVER", str(tmp_path / "redis-server"))

    with pytest.raises(RedisServerNotFound, match="REDIS_SERVER="):
        find_redis_server()


def test_the_session_server_answers_on_loopback(redis_server: RedisServer) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    try:
        assert client.ping() is True
        assert redis_server.url.startswith("redis://127.0.0.1:")
        assert client.config_get("appendonly") == {"appendonly": "no"}
    finally:
        client.close()
