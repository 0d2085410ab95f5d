"""``/networks``: list, inspect, create, remove, connect, disconnect, prune."""

from __future__ import annotations

from aiohttp import web

from dockyard.api.models_networks import parse_endpoint, parse_network_create, render_network
from dockyard.api.routes.common import Routes, body_json, engine, json_response, no_content, qfilters
from dockyard.api.validate import Fields
from dockyard.errors import InvalidArgument


async def list_networks(request: web.Request) -> web.Response:
    views = engine(request).networks.list(qfilters(request))
    return json_response([render_network(v, verbose_containers=False) for v in views])


async def inspect(request: web.Request) -> web.Response:
    view = engine(request).networks.inspect(request.match_info["id"])
    return json_response(render_network(view))


async def create(request: web.Request) -> web.Response:
    opts = parse_network_create(await body_json(request, "network create request"))
    nid, warning = await engine(request).networks.create(opts)
    return json_response({"Id": nid, "Warning": warning}, status=201)


async def remove(request: web.Request) -> web.Response:
    await engine(request).networks.remove(request.match_info["id"])
    return no_content()


def _container(f: Fields) -> str:
    container = f.text("Container")
    if not container:
        raise InvalidArgument("invalid Container: a container name or id is required")
    return container


async def connect(request: web.Request) -> web.Response:
    f = Fields(await body_json(request, "network connect request"), "NetworkConnectRequest")
    ep = parse_endpoint(f.sub("EndpointConfig"))
    await engine(request).networks.connect(request.match_info["id"], _container(f), ep)
    return web.Response(status=200)


async def disconnect(request: web.Request) -> web.Response:
    f = Fields(await body_json(request, "network disconnect request"), "NetworkDisconnectRequest")
    await engine(request).networks.disconnect(request.match_info["id"], _container(f), f.boolean("Force"))
    return web.Response(status=200)


async def prune(request: web.Request) -> web.Response:
    deleted = await engine(request).networks.prune(qfilters(request))
    return json_response({"NetworksDeleted": deleted or None})


ROUTES: Routes = [
    ("GET", "/networks", list_networks),
    ("GET", "/networks/", list_networks),
    ("POST", "/networks/create", create),
    ("POST", "/networks/prune", prune),
    ("GET", "/networks/{id}", inspect),
    ("DELETE", "/networks/{id}", remove),
    ("POST", "/networks/{id}/connect", connect),
    ("POST", "/networks/{id}/disconnect", disconnect),
]
