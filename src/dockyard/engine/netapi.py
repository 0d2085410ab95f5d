"""The engine's network verbs as the API calls them: one object holding networks, endpoints and
containers, so ``connect`` can lock the container and ``inspect`` can list who is attached."""

from __future__ import annotations

import builtins
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dockyard.engine.endpoints import Endpoints
from dockyard.engine.networks import NetworkService
from dockyard.engine.types import ContainerRecord, EndpointSettings, NetworkCreateOptions, NetworkRecord
from dockyard.errors import DockyardError, NotFound

if TYPE_CHECKING:
    from dockyard.engine.lifecycle import ContainerService


@dataclass
class NetworkView:
    """``network inspect``: the record and the running containers' endpoints on it."""
    record: NetworkRecord
    containers: dict[str, tuple[ContainerRecord, EndpointSettings]] = field(default_factory=dict)


class NetworkEngine:
    def __init__(self, networks: NetworkService, endpoints: Endpoints, containers: ContainerService) -> None:
        self.networks = networks
        self.endpoints = endpoints
        self.containers = containers

    async def create(self, opts: NetworkCreateOptions) -> tuple[str, str]:
        return await self.networks.create(opts)

    def list(self, filters: dict[str, list[str]]) -> builtins.list[NetworkView]:
        return [self._view(rec) for rec in self.networks.list(filters)]

    def inspect(self, ref: str) -> NetworkView:
        return self._view(self.networks.store.get(ref))

    def _view(self, rec: NetworkRecord) -> NetworkView:
        view = NetworkView(record=rec)
        for cid in self.endpoints.users(rec.id):
            try:
                crec = self.containers.store.get(cid)
            except NotFound:
                continue
            ep = crec.networks.get(rec.name)
            if ep is not None:
                view.containers[cid] = (crec, ep)
        return view

    async def remove(self, ref: str) -> None:
        await self.networks.remove(ref)

    async def prune(self, filters: dict[str, builtins.list[str]]) -> builtins.list[str]:
        return await self.networks.prune(filters)

    async def connect(self, ref: str, container: str, ep: EndpointSettings) -> None:
        net = self.networks.store.get(ref)
        rec = self.containers.store.get(container)
        async with self.containers.lock(rec.id):
            rec = self.containers.store.get(rec.id)
            await self.endpoints.connect(rec, net, ep)
            await self._save_networks(rec)
        self.networks.emit(net, "connect", {"container": rec.id})

    async def disconnect(self, ref: str, container: str, force: bool) -> None:
        net = self.networks.store.get(ref)
        try:
            rec = self.containers.store.get(container)
        except NotFound:
            if force:  # Docker: force also cleans up after a container that is gone
                return
            raise
        async with self.containers.lock(rec.id):
            rec = self.containers.store.get(rec.id)
            try:
                await self.endpoints.disconnect(rec, net)
            except DockyardError:
                if not force:
                    raise
                return
            await self._save_networks(rec)
        self.networks.emit(net, "disconnect", {"container": rec.id})

    async def _save_networks(self, rec: ContainerRecord) -> None:
        """Store ``rec``'s endpoints into the current record: an exit handled while we awaited
        netlink saved a newer state, which must not be overwritten; and what it tore down did not
        include an endpoint attached meanwhile, which is released here."""
        current = self.containers.store.get(rec.id)
        if rec.state.running and (not current.state.running or current.state.pid != rec.state.pid):
            await self.endpoints.teardown(rec)
        current.networks = rec.networks
        current.ports = rec.ports if current.state.running else {}
        self.containers.store.save(current)
