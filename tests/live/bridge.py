"""The address that `host-gateway` means inside a container on the default bridge, found without trusting
fields an engine may leave empty: Docker 20.10 on Debian reports the bridge's IPAM config as only
{"Subnet": ...}, no "Gateway", while the bridge interface (docker0) always carries the address."""

from __future__ import annotations

import ipaddress
import json
import subprocess


class BridgeGatewayUnknown(RuntimeError):
    pass


def bridge_gateway(network: dict, interface_addresses: dict[str, list[str]]) -> str:
    """The IPv4 gateway of the `docker network inspect bridge` entry `network`.

    The bridge interface's own address in the network's subnet wins (it is what the engine routes through);
    IPAM's Gateway is the fallback for engines whose bridge interface this machine cannot see."""
    interface = (network.get("Options") or {}).get("com.docker.network.bridge.name", "docker0")
    configs = (network.get("IPAM") or {}).get("Config") or []
    subnets = [ipaddress.ip_network(c["Subnet"], strict=False) for c in configs if c.get("Subnet")]
    for address in interface_addresses.get(interface, []):
        ip = ipaddress.ip_address(address)
        if ip.version == 4 and any(ip in subnet for subnet in subnets if subnet.version == 4):
            return address
    for config in configs:
        gateway = config.get("Gateway") or ""
        if gateway and ipaddress.ip_address(gateway).version == 4:
            return gateway
    raise BridgeGatewayUnknown(
        f"the default bridge's gateway is unknown: no IPv4 address of interface {interface!r} lies in its "
        f"subnets {[str(s) for s in subnets]}, and its IPAM config names no Gateway")


def interface_addresses() -> dict[str, list[str]]:
    """Every interface's addresses on this machine, from `ip -j addr`."""
    listing = json.loads(subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True, check=True).stdout)
    return {link["ifname"]: [a["local"] for a in link.get("addr_info", [])] for link in listing}


def default_bridge_gateway() -> str:
    inspect = subprocess.run(["docker", "network", "inspect", "bridge"], capture_output=True, text=True,
                             check=True, timeout=60)
    return bridge_gateway(json.loads(inspect.stdout)[0], interface_addresses())
