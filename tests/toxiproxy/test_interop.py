"""Users may already drive Toxiproxy with toxiproxy-python 0.1.1; it must work with our server."""

from __future__ import annotations

from urllib.parse import urlsplit

from toxiproxy import Toxiproxy as LegacyToxiproxy

from harness.toxiproxy import Toxiproxy


def test_toxiproxy_python_can_drive_the_server_the_harness_starts(
    toxiproxy: Toxiproxy, proxy_name: str, upstream_address: str
) -> None:
    address = urlsplit(toxiproxy.base_url)
    legacy = LegacyToxiproxy()
    legacy.update_api_consumer(address.hostname, address.port)

    proxy = legacy.create(upstream=upstream_address, name=proxy_name, listen="127.0.0.1:0")
    proxy.add_toxic(type="latency", stream="downstream", name="legacy_latency", attributes={"latency": 50})

    seen = toxiproxy.get_proxy(proxy_name)
    assert [(t.name, t.attributes["latency"]) for t in seen.toxics] == [("legacy_latency", 50)]
    assert legacy.running()
    assert proxy_name in legacy.proxies()
