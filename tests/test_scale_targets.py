"""``triton.url`` as several replicas or one balanced name: parsing, the gRPC target, the
channel's load-balancing config (gRPC's round_robin; pick_first kept for one host:port)."""
from __future__ import annotations

import json

import pytest
import yaml

from clients.config import ConfigError, load_app_config
from clients.triton import TargetError, TritonSettings, _channel_args, balanced, grpc_target


def load(tmp_path, url, **triton):
    p = tmp_path / "app.yaml"
    p.write_text(yaml.safe_dump({"triton": {"url": url, **triton}}))
    return load_app_config(p, with_sections=False).triton


def service_config(settings: TritonSettings):
    args = dict(_channel_args(settings))
    return json.loads(args["grpc.service_config"]) if "grpc.service_config" in args else None


def test_one_host_port_is_unchanged(tmp_path):
    t = load(tmp_path, "triton:8001")
    assert t.url == "triton:8001" and t.urls == () and grpc_target(t) == "triton:8001"
    assert not balanced(t) and service_config(t) is None  # gRPC's default pick_first, as before


def test_a_list_becomes_one_round_robin_ipv4_target(tmp_path):
    t = load(tmp_path, ["localhost:9001", "127.0.0.2:9002", "127.0.0.1:9003"])
    assert t.urls == ("localhost:9001", "127.0.0.2:9002", "127.0.0.1:9003")
    assert grpc_target(t) == "ipv4:127.0.0.1:9001,127.0.0.2:9002,127.0.0.1:9003"
    assert balanced(t) and service_config(t) == {"loadBalancingConfig": [{"round_robin": {}}]}


def test_a_list_of_one_is_one_server(tmp_path):
    t = load(tmp_path, ["triton:8001"])
    assert t.url == "triton:8001" and not balanced(t)


def test_dns_name_for_a_headless_service(tmp_path):
    t = load(tmp_path, "dns:///triton-headless.retail.svc.cluster.local:8001")
    assert grpc_target(t) == t.url and balanced(t)
    assert service_config(t)["loadBalancingConfig"] == [{"round_robin": {}}]


def test_ipv6_list_and_explicit_policy(tmp_path):
    t = load(tmp_path, ["[::1]:9001", "[::1]:9002"])
    assert grpc_target(t) == "ipv6:[::1]:9001,[::1]:9002"
    t = load(tmp_path, "triton:8001", load_balancing="round_robin")
    assert balanced(t)
    t = load(tmp_path, "dns:///triton:8001", load_balancing="pick_first")
    assert not balanced(t) and service_config(t) is None


def test_mixed_families_and_unresolvable_names_are_named():
    with pytest.raises(TargetError, match="mix IPv4 and IPv6"):
        grpc_target(TritonSettings(urls=("127.0.0.1:1", "[::1]:2")))
    with pytest.raises(TargetError, match="cannot resolve replica 'no-such-host.invalid:1'"):
        grpc_target(TritonSettings(urls=("127.0.0.1:1", "no-such-host.invalid:1")))


@pytest.mark.parametrize("url,field,problem", [
    ("grpc://h:8001", "triton.url", "no scheme"),
    (["h:1", "dns:///x:2"], "triton.url[1]", "given alone"),
    ("dns://8.8.8.8/x:1", "triton.url", "dns:///name:port"),
    (["h:1", "h"], "triton.url[1]", "host:port"),
    (["h:1", "h:1"], "triton.url", "twice"),
    ([], "triton.url", "at least one"),
    (["h:1", 5], "triton.url[1]", "host:port"),
])
def test_url_errors_name_the_field(tmp_path, url, field, problem):
    with pytest.raises(ConfigError) as e:
        load(tmp_path, url)
    assert f"{field}:" in str(e.value) and problem in str(e.value)


def test_load_balancing_must_be_known(tmp_path):
    with pytest.raises(ConfigError, match="triton.load_balancing"):
        load(tmp_path, "h:1", load_balancing="least_request")


def test_refresh_s_is_validated(tmp_path):
    assert load(tmp_path, ["h:1", "h:2"]).refresh_s == 60.0
    assert load(tmp_path, ["h:1", "h:2"], refresh_s=0).refresh_s == 0
    with pytest.raises(ConfigError, match="triton.refresh_s"):
        load(tmp_path, ["h:1", "h:2"], refresh_s=-1)


def test_a_balanced_channel_is_renewed_and_the_old_one_closed(triton_server):
    """Every refresh_s new requests go to a fresh channel (names resolved again: replicas added
    since are used); requests keep succeeding across the swap; close() closes every channel."""
    import asyncio

    import numpy as np

    from clients.triton import EnsembleClient

    port = triton_server.ports.grpc
    settings = TritonSettings(url=f"dns:///localhost:{port}", refresh_s=0.3, request_timeout_s=5)

    async def go():
        async with EnsembleClient(settings) as client:
            first = client.client
            img = np.full((120, 160, 3), 90, np.uint8)
            await client.infer(img)
            while client.refreshes < 2:
                await client.infer(img)
                await asyncio.sleep(0.05)
            assert client.client is not first and client._old  # the old channel waits out its requests
            await client.infer(img)
        assert not client._old and client._client is None
        return client

    client = asyncio.run(go())
    assert client.balanced and client.refreshes >= 2 and client.failovers == 0
