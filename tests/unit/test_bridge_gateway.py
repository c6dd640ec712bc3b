"""The ACME drill's pebble listens on the default bridge's gateway: found from both shapes that
`docker network inspect bridge` takes (with and without IPAM's Gateway)."""

import pytest

from tests.live.bridge import BridgeGatewayUnknown, bridge_gateway

OPTIONS = {"com.docker.network.bridge.name": "docker0"}
DOCKER0 = {"lo": ["127.0.0.1", "::1"], "eth0": ["10.0.0.5"], "docker0": ["172.17.0.1", "fe80::42:1"]}


def bridge(config: dict) -> dict:
    return {"Name": "bridge", "Options": OPTIONS, "IPAM": {"Driver": "default", "Options": None, "Config": [config]}}


def test_a_bridge_without_ipam_gateway_is_found_from_its_interface():
    # Docker 20.10 on Debian: the IPAM config holds only the subnet (issue 18).
    assert bridge_gateway(bridge({"Subnet": "172.17.0.0/16"}), DOCKER0) == "172.17.0.1"


def test_a_bridge_with_ipam_gateway_gives_the_same_address():
    assert bridge_gateway(bridge({"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}), DOCKER0) == "172.17.0.1"


def test_the_interface_named_in_the_bridge_options_is_read():
    network = {**bridge({"Subnet": "10.99.0.0/24"}), "Options": {"com.docker.network.bridge.name": "br-x"}}
    assert bridge_gateway(network, {**DOCKER0, "br-x": ["10.99.0.1"]}) == "10.99.0.1"


def test_ipam_gateway_is_used_when_the_interface_is_not_visible_here():
    assert bridge_gateway(bridge({"Subnet": "172.18.0.0/16", "Gateway": "172.18.0.1"}), {}) == "172.18.0.1"


def test_an_address_outside_the_subnet_is_not_taken_for_the_gateway():
    with pytest.raises(BridgeGatewayUnknown, match="docker0"):
        bridge_gateway(bridge({"Subnet": "172.17.0.0/16"}), {"docker0": ["192.168.9.1"]})


def test_an_engine_reporting_neither_fails_with_what_was_tried():
    with pytest.raises(BridgeGatewayUnknown, match="names no Gateway"):
        bridge_gateway(bridge({"Subnet": "172.17.0.0/16"}), {})
