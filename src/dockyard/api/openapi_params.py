"""Request parameters and bodies of each served endpoint, for ``api/openapi.py``.

Names and types are what the handlers read (``api/routes/*``, ``api/models*.py``), which are
Docker's (moby's ``api/swagger.yaml``). Objects stay open (``additionalProperties``), as Docker
ignores fields it does not know. Every served (method, path) has an entry, even when it takes
nothing; ``openapi.undocumented()`` lists any mismatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Schema = dict[str, Any]


@dataclass(frozen=True)
class Operation:
    query: tuple[Schema, ...] = ()
    body: Schema | None = None
    media_type: str = "application/json"
    body_required: bool = False
    headers: tuple[Schema, ...] = ()
    summary: str = ""


# --------------------------------------------------------------------------- building blocks

STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer", "format": "int64"}
BOOL: Schema = {"type": "boolean"}
STR_LIST: Schema = {"type": "array", "items": STR}
STR_MAP: Schema = {"type": "object", "additionalProperties": STR}
OBJ_MAP: Schema = {"type": "object", "additionalProperties": {"type": "object"}}
STR_SLICE: Schema = {"oneOf": [STR, STR_LIST]}  # Docker's StrSlice: "cmd" or ["cmd", "arg"]
CONSOLE_SIZE: Schema = {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 2, "maxItems": 2}
TAR: Schema = {"type": "string", "format": "binary"}


def _obj(**props: Schema) -> Schema:
    return {"type": "object", "properties": props}


def q(name: str, schema: Schema, required: bool = False) -> Schema:
    return {"name": name, "in": "query", "required": required, "schema": schema}


def qb(*names: str) -> tuple[Schema, ...]:
    return tuple(q(n, BOOL) for n in names)


def qarr(name: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": STR_LIST, "style": "form", "explode": True}


FILTERS = q("filters", STR)  # a JSON object, {"key": ["value"]}
AUTH_HEADER: Schema = {"name": "X-Registry-Auth", "in": "header", "required": False, "schema": STR}

# --------------------------------------------------------------------------- bodies

HEALTH = _obj(Test=STR_LIST, Interval=INT, Timeout=INT, StartPeriod=INT, StartInterval=INT, Retries=INT)

CONTAINER_CONFIG = _obj(
    Image=STR, Cmd=STR_SLICE, Entrypoint=STR_SLICE, Env=STR_LIST, WorkingDir=STR, User=STR, Hostname=STR,
    Domainname=STR, Tty=BOOL, OpenStdin=BOOL, StdinOnce=BOOL, AttachStdin=BOOL, AttachStdout=BOOL,
    AttachStderr=BOOL, Labels=STR_MAP, StopSignal=STR, StopTimeout=INT, ExposedPorts=OBJ_MAP, Volumes=OBJ_MAP,
    Healthcheck=HEALTH, NetworkDisabled=BOOL, ArgsEscaped=BOOL, OnBuild=STR_LIST, Shell=STR_LIST,
    MacAddress=STR,
)

RESTART_POLICY = _obj(Name={"type": "string", "enum": ["", "no", "always", "on-failure", "unless-stopped"]},
                      MaximumRetryCount=INT)

RESOURCES: dict[str, Schema] = {
    "Memory": INT, "MemorySwap": INT, "MemoryReservation": INT, "NanoCpus": INT, "CpuShares": INT,
    "CpuPeriod": INT, "CpuQuota": INT, "CpusetCpus": STR, "CpusetMems": STR, "PidsLimit": INT,
    "BlkioWeight": INT, "OomKillDisable": BOOL,
    "BlkioWeightDevice": {"type": "array", "items": _obj(Path=STR, Weight=INT)},
    **{k: {"type": "array", "items": _obj(Path=STR, Rate=INT)}
       for k in ("BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps", "BlkioDeviceWriteIOps")},
}

PORT_BINDINGS: Schema = {"type": "object", "additionalProperties": {
    "type": "array", "items": _obj(HostIp=STR, HostPort=STR)}}

HOST_CONFIG = _obj(
    Binds=STR_LIST, NetworkMode=STR, PortBindings=PORT_BINDINGS, RestartPolicy=RESTART_POLICY, AutoRemove=BOOL,
    Runtime=STR, Init=BOOL, Privileged=BOOL, ReadonlyRootfs=BOOL, CapAdd=STR_LIST, CapDrop=STR_LIST,
    SecurityOpt=STR_LIST, Dns=STR_LIST, DnsSearch=STR_LIST, DnsOptions=STR_LIST, ExtraHosts=STR_LIST,
    Links=STR_LIST,
    Mounts={"type": "array", "items": _obj(Type=STR, Source=STR, Target=STR, ReadOnly=BOOL,
                                           BindOptions={"type": "object"}, VolumeOptions={"type": "object"},
                                           TmpfsOptions={"type": "object"})},
    VolumesFrom=STR_LIST, VolumeDriver=STR, PublishAllPorts=BOOL, Tmpfs=STR_MAP, ShmSize=INT,
    LogConfig=_obj(Type=STR, Config=STR_MAP), Sysctls=STR_MAP,
    Ulimits={"type": "array", "items": _obj(Name=STR, Soft=INT, Hard=INT)},
    Devices={"type": "array", "items": _obj(PathOnHost=STR, PathInContainer=STR, CgroupPermissions=STR)},
    DeviceCgroupRules=STR_LIST, GroupAdd=STR_LIST, OomScoreAdj=INT, PidMode=STR, IpcMode=STR, UTSMode=STR,
    UsernsMode=STR, CgroupnsMode=STR, MaskedPaths=STR_LIST, ReadonlyPaths=STR_LIST, ConsoleSize=CONSOLE_SIZE,
    CgroupParent=STR, ContainerIDFile=STR,
    **RESOURCES,
)

ENDPOINT_SETTINGS = _obj(IPAMConfig=_obj(IPv4Address=STR, IPv6Address=STR), Aliases=STR_LIST, Links=STR_LIST,
                         MacAddress=STR, DriverOpts=STR_MAP)

CONTAINER_CREATE: Schema = {
    **CONTAINER_CONFIG,
    "properties": {**CONTAINER_CONFIG["properties"], "HostConfig": HOST_CONFIG,
                   "NetworkingConfig": _obj(EndpointsConfig={"type": "object",
                                                             "additionalProperties": ENDPOINT_SETTINGS})},
}

UPDATE = _obj(RestartPolicy=RESTART_POLICY, **RESOURCES)

EXEC_CONFIG = _obj(Cmd=STR_SLICE, Tty=BOOL, AttachStdin=BOOL, AttachStdout=BOOL, AttachStderr=BOOL,
                   DetachKeys=STR, Env=STR_LIST, User=STR, WorkingDir=STR, Privileged=BOOL,
                   ConsoleSize=CONSOLE_SIZE)
EXEC_START = _obj(Detach=BOOL, Tty=BOOL, ConsoleSize=CONSOLE_SIZE)

NETWORK_CREATE = _obj(
    Name=STR, Driver=STR, Options=STR_MAP, Labels=STR_MAP, Internal=BOOL, Attachable=BOOL, Ingress=BOOL,
    EnableIPv6=BOOL, ConfigOnly=BOOL, ConfigFrom=_obj(Network=STR),
    IPAM=_obj(Driver=STR, Options=STR_MAP, Config={"type": "array", "items": _obj(
        Subnet=STR, Gateway=STR, IPRange=STR, AuxiliaryAddresses=STR_MAP)}),
)
NETWORK_CONNECT = _obj(Container=STR, EndpointConfig=ENDPOINT_SETTINGS)
NETWORK_DISCONNECT = _obj(Container=STR, Force=BOOL)
VOLUME_CREATE = _obj(Name=STR, Driver=STR, DriverOpts=STR_MAP, Labels=STR_MAP)
AUTH_CONFIG = _obj(username=STR, password=STR, serveraddress=STR, email=STR, identitytoken=STR)

# --------------------------------------------------------------------------- the table

_STOP = (q("t", INT), q("signal", STR))

OPERATIONS: dict[tuple[str, str], Operation] = {
    # system
    ("GET", "/_ping"): Operation(),
    ("HEAD", "/_ping"): Operation(),
    ("GET", "/version"): Operation(),
    ("GET", "/info"): Operation(),
    ("GET", "/events"): Operation(query=(q("since", STR), q("until", STR), FILTERS)),
    ("GET", "/system/df"): Operation(query=(qarr("type"),)),
    ("POST", "/system/check"): Operation(query=qb("repair")),
    # containers
    ("GET", "/containers/json"): Operation(query=(*qb("all", "size"), q("limit", INT), FILTERS)),
    ("POST", "/containers/create"): Operation(query=(q("name", STR), q("platform", STR)),
                                              body=CONTAINER_CREATE, body_required=True),
    ("POST", "/containers/prune"): Operation(query=(FILTERS,)),
    ("GET", "/containers/{id}/json"): Operation(query=qb("size")),
    ("POST", "/containers/{id}/start"): Operation(query=(q("detachKeys", STR),)),
    ("POST", "/containers/{id}/stop"): Operation(query=_STOP),
    ("POST", "/containers/{id}/restart"): Operation(query=_STOP),
    ("POST", "/containers/{id}/kill"): Operation(query=(q("signal", STR),)),
    ("POST", "/containers/{id}/wait"): Operation(query=(q("condition", {"type": "string", "enum": [
        "not-running", "next-exit", "removed"]}),)),
    ("DELETE", "/containers/{id}"): Operation(query=qb("v", "force", "link")),
    ("GET", "/containers/{id}/logs"): Operation(query=(
        *qb("follow", "stdout", "stderr", "timestamps"), q("since", STR), q("until", STR), q("tail", STR))),
    ("POST", "/containers/{id}/attach"): Operation(query=(
        q("detachKeys", STR), *qb("logs", "stream", "stdin", "stdout", "stderr"))),
    ("GET", "/containers/{id}/attach/ws"): Operation(query=(
        q("detachKeys", STR), *qb("logs", "stream", "stdin", "stdout", "stderr"))),
    ("POST", "/containers/{id}/resize"): Operation(query=(q("h", INT), q("w", INT))),
    ("GET", "/containers/{id}/top"): Operation(query=(q("ps_args", STR),)),
    ("POST", "/containers/{id}/rename"): Operation(query=(q("name", STR, required=True),)),
    ("POST", "/containers/{id}/pause"): Operation(),
    ("POST", "/containers/{id}/unpause"): Operation(),
    ("POST", "/containers/{id}/update"): Operation(body=UPDATE, body_required=True),
    ("GET", "/containers/{id}/stats"): Operation(query=qb("stream", "one-shot")),
    ("GET", "/containers/{id}/changes"): Operation(),
    ("GET", "/containers/{id}/export"): Operation(),
    ("HEAD", "/containers/{id}/archive"): Operation(query=(q("path", STR, required=True),)),
    ("GET", "/containers/{id}/archive"): Operation(query=(q("path", STR, required=True),)),
    ("PUT", "/containers/{id}/archive"): Operation(
        query=(q("path", STR, required=True), *qb("noOverwriteDirNonDir", "copyUIDGID")),
        body=TAR, media_type="application/x-tar", body_required=True),
    ("POST", "/commit"): Operation(
        query=(q("container", STR), q("repo", STR), q("tag", STR), q("comment", STR), q("author", STR),
               *qb("pause"), qarr("changes")),
        body=CONTAINER_CONFIG),
    # exec
    ("POST", "/containers/{id}/exec"): Operation(body=EXEC_CONFIG, body_required=True),
    ("POST", "/exec/{id}/start"): Operation(body=EXEC_START),
    ("POST", "/exec/{id}/resize"): Operation(query=(q("h", INT), q("w", INT))),
    ("GET", "/exec/{id}/json"): Operation(),
    # images
    ("GET", "/images/json"): Operation(query=(*qb("all", "digests", "shared-size"), FILTERS)),
    ("POST", "/images/create"): Operation(
        query=(q("fromImage", STR), q("fromSrc", STR), q("repo", STR), q("tag", STR), q("message", STR),
               q("platform", STR), qarr("changes")),
        body=TAR, media_type="application/octet-stream", headers=(AUTH_HEADER,)),
    ("POST", "/images/load"): Operation(query=qb("quiet"), body=TAR, media_type="application/x-tar"),
    ("GET", "/images/get"): Operation(query=(qarr("names"),)),
    ("POST", "/images/prune"): Operation(query=(FILTERS,)),
    ("GET", "/images/{name}/json"): Operation(),
    ("GET", "/images/{name}/history"): Operation(),
    ("GET", "/images/{name}/get"): Operation(),
    ("POST", "/images/{name}/tag"): Operation(query=(q("repo", STR), q("tag", STR))),
    ("DELETE", "/images/{name}"): Operation(query=qb("force", "noprune")),
    ("POST", "/images/{name}/push"): Operation(query=(q("tag", STR),), headers=(AUTH_HEADER,)),
    ("GET", "/images/search"): Operation(query=(q("term", STR, required=True), q("limit", INT), FILTERS),
                                         headers=(AUTH_HEADER,)),
    ("GET", "/distribution/{name}/json"): Operation(headers=(AUTH_HEADER,)),
    ("POST", "/auth"): Operation(body=AUTH_CONFIG),
    # build
    ("POST", "/build"): Operation(
        query=(q("dockerfile", STR), qarr("t"), q("extrahosts", STR), q("remote", STR),
               *qb("q", "nocache", "pull", "rm", "forcerm"), q("cachefrom", STR), q("buildargs", STR),
               q("shmsize", INT), q("labels", STR), q("networkmode", STR), q("platform", STR),
               q("target", STR), q("version", {"type": "string", "enum": ["1", "2"]})),
        body=TAR, media_type="application/x-tar"),
    ("POST", "/build/prune"): Operation(query=(*qb("all"), FILTERS)),
    # networks
    ("GET", "/networks"): Operation(query=(FILTERS,)),
    ("GET", "/networks/"): Operation(query=(FILTERS,)),
    ("POST", "/networks/create"): Operation(body=NETWORK_CREATE, body_required=True),
    ("POST", "/networks/prune"): Operation(query=(FILTERS,)),
    ("GET", "/networks/{id}"): Operation(query=(*qb("verbose"), q("scope", STR))),
    ("DELETE", "/networks/{id}"): Operation(),
    ("POST", "/networks/{id}/connect"): Operation(body=NETWORK_CONNECT, body_required=True),
    ("POST", "/networks/{id}/disconnect"): Operation(body=NETWORK_DISCONNECT, body_required=True),
    # volumes
    ("GET", "/volumes"): Operation(query=(FILTERS,)),
    ("POST", "/volumes/create"): Operation(body=VOLUME_CREATE, body_required=True),
    ("POST", "/volumes/prune"): Operation(query=(FILTERS,)),
    ("GET", "/volumes/{name}"): Operation(),
    ("DELETE", "/volumes/{name}"): Operation(query=qb("force")),
}
