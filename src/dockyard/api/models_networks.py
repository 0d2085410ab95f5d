"""Docker JSON for networks: ``/networks`` bodies and views, and a container's ``NetworkSettings``."""

from __future__ import annotations

from typing import Any

from dockyard.api.validate import Fields
from dockyard.engine.netapi import NetworkView
from dockyard.engine.types import ContainerRecord, EndpointSettings, IPAMPool, NetworkCreateOptions
from dockyard.errors import InvalidArgument


def parse_endpoint(f: Fields) -> EndpointSettings:
    """Docker's ``EndpointSettings`` as a request carries it (create's EndpointsConfig, connect)."""
    ipam = f.sub("IPAMConfig")
    return EndpointSettings(
        aliases=f.str_list("Aliases"), links=f.str_list("Links"),
        ipv4_requested=ipam.text("IPv4Address"), ipv6_requested=ipam.text("IPv6Address"),
        mac_requested=f.text("MacAddress"), driver_opts=f.str_map("DriverOpts"))


def parse_networking(f: Fields) -> dict[str, EndpointSettings]:
    out = {}
    eps = f.sub("EndpointsConfig")
    for name in eps.data:
        out[name] = parse_endpoint(eps.sub(name))
    return out


def parse_network_create(body: dict[str, Any]) -> NetworkCreateOptions:
    f = Fields(body, "NetworkCreateRequest")
    name = f.text("Name")
    if not name:
        raise InvalidArgument("invalid name: name is empty")
    ipam = f.sub("IPAM")
    pools = []
    for i, item in enumerate(ipam.dict_list("Config")):
        pf = Fields(item, f"IPAM.Config[{i}]")
        pools.append(IPAMPool(subnet=pf.text("Subnet"), gateway=pf.text("Gateway"), ip_range=pf.text("IPRange"),
                              aux_addresses=pf.str_map("AuxiliaryAddresses")))
    return NetworkCreateOptions(
        name=name, driver=f.text("Driver", "bridge") or "bridge", options=f.str_map("Options"),
        labels=f.str_map("Labels"), internal=f.boolean("Internal"), attachable=f.boolean("Attachable"),
        ingress=f.boolean("Ingress"), enable_ipv6=bool(f.opt_bool("EnableIPv6")),
        ipam_driver=ipam.text("Driver", "default") or "default", ipam_options=ipam.str_map("Options"),
        ipam_config=pools, config_only=f.boolean("ConfigOnly"),
        config_from=f.sub("ConfigFrom").text("Network"))


def render_network(view: NetworkView, verbose_containers: bool = True) -> dict[str, Any]:
    rec = view.record
    containers = {}
    for cid, (crec, ep) in view.containers.items():
        containers[cid] = {
            "Name": crec.name, "EndpointID": ep.endpoint_id, "MacAddress": ep.mac_address,
            "IPv4Address": f"{ep.ip_address}/{ep.prefix_len}" if ep.ip_address else "",
            "IPv6Address": f"{ep.ipv6_address}/{ep.ipv6_prefix_len}" if ep.ipv6_address else "",
        }
    return {
        "Name": rec.name, "Id": rec.id, "Created": rec.created, "Scope": rec.scope, "Driver": rec.driver,
        "EnableIPv4": rec.enable_ipv4, "EnableIPv6": rec.enable_ipv6,
        "IPAM": {"Driver": rec.ipam_driver, "Options": rec.ipam_options or None, "Config": [
            {k: v for k, v in (("Subnet", p.subnet), ("IPRange", p.ip_range), ("Gateway", p.gateway),
                               ("AuxiliaryAddresses", p.aux_addresses or None)) if v}
            for p in rec.ipam_config]},
        "Internal": rec.internal, "Attachable": rec.attachable, "Ingress": rec.ingress,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": False,
        "Containers": containers if verbose_containers else {},
        "Options": rec.options, "Labels": rec.labels,
    }


def render_endpoint(ep: EndpointSettings, running: bool) -> dict[str, Any]:
    live = running and bool(ep.endpoint_id)
    ipam = {k: v for k, v in (("IPv4Address", ep.ipv4_requested), ("IPv6Address", ep.ipv6_requested)) if v}
    return {
        "IPAMConfig": ipam or None, "Links": ep.links or None, "Aliases": ep.aliases or None,
        "MacAddress": ep.mac_address if live else ep.mac_requested, "DriverOpts": ep.driver_opts or None,
        "NetworkID": ep.network_id, "EndpointID": ep.endpoint_id if live else "",
        "Gateway": ep.gateway if live else "", "IPAddress": ep.ip_address if live else "",
        "IPPrefixLen": ep.prefix_len if live else 0, "IPv6Gateway": ep.ipv6_gateway if live else "",
        "GlobalIPv6Address": ep.ipv6_address if live else "",
        "GlobalIPv6PrefixLen": ep.ipv6_prefix_len if live else 0,
        "DNSNames": None,   # render_network_settings knows the container's names
    }


def _ports(rec: ContainerRecord) -> dict[str, Any]:
    """Exposed ports (null when not published) and published ones, while running; {} otherwise."""
    if not rec.state.running:
        return {}
    ports: dict[str, Any] = {p: None for p in rec.config.exposed_ports}
    for port in rec.host_config.port_bindings:
        ports.setdefault(port, None)
    ports.update(rec.ports)
    return ports


def render_network_settings(rec: ContainerRecord) -> dict[str, Any]:
    running = rec.state.running
    networks = {}
    for name, ep in rec.networks.items():
        out = render_endpoint(ep, running)
        if out["DNSNames"] is None and running and ep.endpoint_id and name not in ("bridge", "host", "none"):
            out["DNSNames"] = list(dict.fromkeys([rec.name, *ep.aliases, rec.id[:12]]))
        networks[name] = out
    bridge = rec.networks.get("bridge")
    top = render_endpoint(bridge, running) if bridge is not None else render_endpoint(EndpointSettings(), False)
    pid = rec.state.pid if running else 0
    return {
        "Bridge": "", "SandboxID": rec.id if pid else "", "SandboxKey": f"/proc/{pid}/ns/net" if pid else "",
        "Ports": _ports(rec), "HairpinMode": False,
        "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0, "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None, "EndpointID": top["EndpointID"], "Gateway": top["Gateway"],
        "GlobalIPv6Address": top["GlobalIPv6Address"], "GlobalIPv6PrefixLen": top["GlobalIPv6PrefixLen"],
        "IPAddress": top["IPAddress"], "IPPrefixLen": top["IPPrefixLen"], "IPv6Gateway": top["IPv6Gateway"],
        "MacAddress": top["MacAddress"] if bridge is not None else "", "Networks": networks,
    }


def summary_ports(rec: ContainerRecord) -> list[dict[str, Any]]:
    """``GET /containers/json`` Ports: published ones with their host side, exposed ones bare."""
    if not rec.state.running:
        return []
    out: list[dict[str, Any]] = []
    seen = set()
    for port, bindings in rec.ports.items():
        number, _, proto = port.partition("/")
        seen.add(port)
        for b in bindings:
            out.append({"IP": b.get("HostIp") or "0.0.0.0", "PrivatePort": int(number),
                        "PublicPort": int(b["HostPort"]), "Type": proto or "tcp"})
    for port in rec.config.exposed_ports:
        if port not in seen:
            number, _, proto = port.partition("/")
            out.append({"PrivatePort": int(number), "Type": proto or "tcp"})
    return out


def summary_networks(rec: ContainerRecord) -> dict[str, Any]:
    return {name: render_endpoint(ep, rec.state.running) for name, ep in rec.networks.items()}
