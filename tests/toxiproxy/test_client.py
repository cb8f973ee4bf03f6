"""The Toxiproxy client against the real toxiproxy-server v2.12.0 started by the stack."""

from __future__ import annotations

import anyio
import httpx
import pytest

from harness.toxiproxy import (
    AsyncToxiproxy,
    Bandwidth,
    Latency,
    LimitData,
    ProxyExists,
    ProxyNotFound,
    Slicer,
    Stream,
    Timeout,
    ToxicExists,
    ToxicNotFound,
    Toxiproxy,
    ToxiproxyBadRequest,
    ToxiproxyRefused,
    ToxiproxyServerError,
    ToxiproxyWedged,
    parse_version,
)
from harness.toxiproxy._client import _error_for


def test_version_of_a_go_install_build_reads_as_git(toxiproxy: Toxiproxy) -> None:
    """`go install` builds leave the version variable at its default."""
    assert toxiproxy.version() == "git"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("2.5.0", "2.5.0"),
        ('{"version": "2.6.0"}\\n', "2.6.0"),
        ('{"version": "2.12.0"}\n', "2.12.0"),
        ("git", "git"),
    ],
)
def test_version_parses_every_historical_format(body: str, expected: str) -> None:
    assert parse_version(body) == expected


def test_created_proxy_listens_on_the_port_the_kernel_gave_it(
    toxiproxy: Toxiproxy, proxy_name: str, upstream_address: str
) -> None:
    proxy = toxiproxy.create_proxy(proxy_name, upstream=upstream_address)

    assert proxy.enabled
    assert proxy.listen_port > 0
    response = httpx.get(f"http://127.0.0.1:{proxy.listen_port}/__admin/health")
    assert response.status_code == 200


def test_proxy_created_with_toxics_has_them_before_its_first_connection(
    toxiproxy: Toxiproxy, proxy_name: str, upstream_address: str
) -> None:
    proxy = toxiproxy.create_proxy(
        proxy_name, upstream=upstream_address, toxics=[LimitData(bytes=0, name="cut")]
    )

    assert proxy.enabled
    assert [t.name for t in proxy.toxics] == ["cut"]
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"http://127.0.0.1:{proxy.listen_port}/__admin/health")


def test_a_refused_toxic_leaves_no_half_built_proxy(
    toxiproxy: Toxiproxy, proxy_name: str, upstream_address: str
) -> None:
    with pytest.raises(ToxicExists):
        toxiproxy.create_proxy(
            proxy_name,
            upstream=upstream_address,
            toxics=[LimitData(bytes=0, name="twice"), LimitData(bytes=1, name="twice")],
        )

    assert proxy_name not in toxiproxy.proxies()


def test_duplicate_proxy_and_duplicate_toxic_raise_different_errors(
    toxiproxy: Toxiproxy, proxy_name: str, upstream_address: str
) -> None:
    toxiproxy.create_proxy(proxy_name, upstream=upstream_address)
    toxiproxy.add_toxic(proxy_name, Latency(latency_ms=10, name="slow"))

    with pytest.raises(ProxyExists):
        toxiproxy.create_proxy(proxy_name, upstream=upstream_address)
    with pytest.raises(ToxicExists):
        toxiproxy.add_toxic(proxy_name, Latency(latency_ms=10, name="slow"))


def test_missing_proxy_and_missing_toxic_raise_different_errors(
    toxiproxy: Toxiproxy, proxy_name: str, upstream_address: str
) -> None:
    with pytest.raises(ProxyNotFound):
        toxiproxy.get_proxy("no_such_proxy")
    toxiproxy.create_proxy(proxy_name, upstream=upstream_address)
    with pytest.raises(ToxicNotFound):
        toxiproxy.remove_toxic(proxy_name, "no_such_toxic")
    with pytest.raises(ProxyNotFound):
        toxiproxy.add_toxic("no_such_proxy", Latency(latency_ms=1))

    toxiproxy.remove_toxic(proxy_name, "no_such_toxic", missing_ok=True)


def test_listen_address_in_use_raises_server_error(
    toxiproxy: Toxiproxy, proxy_name: str, upstream_address: str, occupied_port: int
) -> None:
    with pytest.raises(ToxiproxyServerError, match="address already in use"):
        toxiproxy.create_proxy(proxy_name, upstream=upstream_address, listen=f"127.0.0.1:{occupied_port}")


def test_missing_upstream_is_a_bad_request(toxiproxy: Toxiproxy, proxy_name: str) -> None:
    with pytest.raises(ToxiproxyBadRequest):
        toxiproxy.create_proxy(proxy_name, upstream="")


def test_update_toxic_returns_the_servers_merged_attributes(
    toxiproxy: Toxiproxy, proxy_name: str, upstream_address: str
) -> None:
    toxiproxy.create_proxy(proxy_name, upstream=upstream_address)
    toxiproxy.add_toxic(proxy_name, Latency(latency_ms=100, jitter_ms=5, name="lat"))

    updated = toxiproxy.update_toxic(proxy_name, "lat", attributes={"latency": 250}, toxicity=0.5)

    assert updated.attributes == {"latency": 250, "jitter": 5}
    assert updated.toxicity == 0.5
    assert toxiproxy.toxics(proxy_name)[0].attributes["latency"] == 250


def test_toxic_context_manager_removes_the_toxic_on_exit(
    toxiproxy: Toxiproxy, proxy_name: str, upstream_address: str
) -> None:
    toxiproxy.create_proxy(proxy_name, upstream=upstream_address)

    with toxiproxy.toxic(proxy_name, Slicer(average_size=64, size_variation=8, delay_us=10)) as toxic:
        assert [t.name for t in toxiproxy.toxics(proxy_name)] == [toxic.name]
    assert toxiproxy.toxics(proxy_name) == []


def test_down_refuses_connections_until_the_block_ends(
    toxiproxy: Toxiproxy, proxy_name: str, upstream_address: str
) -> None:
    port = toxiproxy.create_proxy(proxy_name, upstream=upstream_address).listen_port
    url = f"http://127.0.0.1:{port}/__admin/health"

    with toxiproxy.down(proxy_name) as proxy:
        assert not proxy.enabled
        with pytest.raises(httpx.ConnectError):
            httpx.get(url)
    assert httpx.get(url).status_code == 200


def test_reset_enables_proxies_and_removes_toxics(
    toxiproxy: Toxiproxy, proxy_name: str, upstream_address: str
) -> None:
    toxiproxy.create_proxy(proxy_name, upstream=upstream_address)
    toxiproxy.add_toxic(proxy_name, Timeout(timeout_ms=0, stream=Stream.UPSTREAM))
    toxiproxy.disable(proxy_name)

    toxiproxy.reset()

    proxy = toxiproxy.get_proxy(proxy_name)
    assert proxy.enabled
    assert proxy.toxics == ()


def test_populate_goes_through_the_server_and_returns_its_proxies(
    toxiproxy: Toxiproxy, proxy_name: str, upstream_address: str
) -> None:
    first = toxiproxy.populate([{"name": proxy_name, "upstream": upstream_address, "listen": "127.0.0.1:0"}])
    toxiproxy.add_toxic(proxy_name, Latency(latency_ms=5, name="kept"))
    listen = first[0].listen

    again = toxiproxy.populate([{"name": proxy_name, "upstream": upstream_address, "listen": listen}])

    assert [p.name for p in again] == [proxy_name]
    assert [t.name for t in toxiproxy.get_proxy(proxy_name).toxics] == ["kept"]


def test_browser_user_agent_is_refused_and_mapped(toxiproxy: Toxiproxy) -> None:
    """The server's CSRF guard; our client never sends such an agent, so provoke it directly."""
    response = httpx.get(f"{toxiproxy.base_url}/proxies", headers={"User-Agent": "Mozilla/5.0"})

    assert response.status_code == 403
    assert isinstance(_error_for(response, "proxy"), ToxiproxyRefused)


def test_503_is_read_as_a_wedged_server() -> None:
    """A wedged server (#558) cannot be provoked on demand; the mapping is checked on its answer."""
    response = httpx.Response(
        503, content=b"", request=httpx.Request("DELETE", "http://x/proxies/p/toxics/t")
    )

    error = _error_for(response, "toxic")

    assert isinstance(error, ToxiproxyWedged)
    assert error.status == 503


def test_every_call_has_a_timeout(occupied_port: int) -> None:
    """A server that accepts connections and never answers, as a wedged one does."""
    client = Toxiproxy(f"http://127.0.0.1:{occupied_port}", timeout=0.2)
    with client, pytest.raises(httpx.TimeoutException):
        client.version()


def test_toxic_constructors_refuse_values_that_would_not_do_what_they_say() -> None:
    with pytest.raises(ValueError, match="never delivers"):
        Bandwidth(rate_kb_per_s=0)
    assert Bandwidth(rate_kb_per_s=0, stall=True).attributes() == {"rate": 0}
    with pytest.raises(ValueError, match="size_variation"):
        Slicer(average_size=10, size_variation=10)
    with pytest.raises(ValueError, match="toxicity"):
        Latency(latency_ms=1, toxicity=1.5)
    assert Slicer(average_size=10, delay_us=5).attributes()["delay"] == 5


def test_async_client_drives_the_same_server(
    toxiproxy: Toxiproxy, proxy_name: str, upstream_address: str
) -> None:
    async def scenario() -> list[str]:
        async with AsyncToxiproxy(toxiproxy.base_url) as client:
            await client.create_proxy(proxy_name, upstream=upstream_address, toxics=[LimitData(bytes=10)])
            async with client.toxic(proxy_name, Latency(latency_ms=1, name="a_lat")):
                names = [t.name for t in await client.toxics(proxy_name)]
            async with client.down(proxy_name) as down:
                assert not down.enabled
            return names

    names = anyio.run(scenario)

    assert sorted(names) == ["a_lat", "limit_data_downstream"]
    assert toxiproxy.get_proxy(proxy_name).enabled
