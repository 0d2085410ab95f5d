"""What every ``dockyard`` command is: its usage line, one-line description, aliases and the section of
``dockyard --help`` it is listed in. The help, the shell completion and the CLI reference all read this
one table; the parsers in ``main`` say which flags each command takes. Kept to plain tuples: ``main``
imports it on every run."""

from __future__ import annotations

from dockyard.record import Record

COMMON, MANAGEMENT, OTHER = "common", "management", "other"


class Command(Record):
    __slots__ = ("aliases", "description", "path", "usage")

    def __init__(self, path: str, usage: str, description: str, aliases: tuple[str, ...]) -> None:
        self.path = path                # canonical path: "container run"
        self.usage = usage              # what follows "[OPTIONS]" in the usage line ("" for none)
        self.description = description  # one line, no final full stop
        self.aliases = aliases          # every path that runs it, the canonical one first (empty: no alias)


def _c(path: str, usage: str, description: str, *aliases: str) -> Command:
    return Command(path, usage, description, (path, *aliases) if aliases else ())


_TABLE = (
    # management groups
    _c("builder", "COMMAND", "Manage the build cache and build images"),
    _c("container", "COMMAND", "Manage containers"),
    _c("image", "COMMAND", "Manage images"),
    _c("network", "COMMAND", "Manage networks"),
    _c("system", "COMMAND", "Inspect and maintain the daemon and its storage"),
    _c("volume", "COMMAND", "Manage volumes"),
    _c("registry", "COMMAND", "Run an OCI registry server (see docs/registry.md)"),
    _c("context", "COMMAND", "Manage contexts: which daemon the CLI talks to"),
    # containers
    _c("container attach", "CONTAINER", "Attach the terminal's stdin, stdout and stderr to a running container",
       "attach"),
    _c("container commit", "CONTAINER [REPOSITORY[:TAG]]", "Make a new image from a container's changes",
       "commit"),
    _c("container cp", "CONTAINER:SRC_PATH DEST_PATH|-\n\tdockyard cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
       "Copy files and directories between a container and the local filesystem", "cp"),
    _c("container create", "IMAGE [COMMAND] [ARG...]", "Create a new container without starting it", "create"),
    _c("container diff", "CONTAINER", "List the files and directories changed in a container's filesystem",
       "diff"),
    _c("container exec", "CONTAINER COMMAND [ARG...]", "Run a command in a running container", "exec"),
    _c("container export", "CONTAINER", "Write a container's filesystem as a tar archive", "export"),
    _c("container inspect", "CONTAINER [CONTAINER...]", "Show low-level details of one or more containers"),
    _c("container kill", "CONTAINER [CONTAINER...]", "Send a signal (default SIGKILL) to one or more running "
       "containers", "kill"),
    _c("container logs", "CONTAINER", "Show the logs of a container", "logs"),
    _c("container ls", "", "List containers", "container list", "container ps", "ps"),
    _c("container pause", "CONTAINER [CONTAINER...]", "Freeze all processes of one or more containers", "pause"),
    _c("container port", "CONTAINER [PRIVATE_PORT[/PROTO]]", "List a container's published ports, or the "
       "host address of one", "port"),
    _c("container prune", "", "Remove every stopped container"),
    _c("container rename", "CONTAINER NEW_NAME", "Give a container a new name", "rename"),
    _c("container restart", "CONTAINER [CONTAINER...]", "Stop and start one or more containers", "restart"),
    _c("container rm", "CONTAINER [CONTAINER...]", "Remove one or more containers", "container remove", "rm"),
    _c("container run", "IMAGE [COMMAND] [ARG...]", "Create a container from an image and start it", "run"),
    _c("container start", "CONTAINER [CONTAINER...]", "Start one or more stopped containers", "start"),
    _c("container stats", "[CONTAINER...]", "Show a live stream of containers' resource usage", "stats"),
    _c("container stop", "CONTAINER [CONTAINER...]", "Stop one or more running containers", "stop"),
    _c("container top", "CONTAINER [ps OPTIONS]", "List the processes running in a container", "top"),
    _c("container unpause", "CONTAINER [CONTAINER...]", "Thaw all processes of one or more paused containers",
       "unpause"),
    _c("container update", "CONTAINER [CONTAINER...]", "Change the resource limits or restart policy of one "
       "or more containers", "update"),
    _c("container wait", "CONTAINER [CONTAINER...]", "Wait until one or more containers stop, then print "
       "their exit codes", "wait"),
    # images
    _c("image build", "PATH | -", "Build an image from a Dockerfile", "builder build", "build"),
    _c("image history", "IMAGE", "Show the layers an image was built from", "history"),
    _c("image import", "file|- [REPOSITORY[:TAG]]", "Make a single-layer image from a tarball", "import"),
    _c("image inspect", "IMAGE [IMAGE...]", "Show low-level details of one or more images"),
    _c("image load", "", "Load images from a tar archive (docker save or OCI layout) or stdin", "load"),
    _c("image ls", "[REPOSITORY[:TAG]]", "List images", "image list", "images"),
    _c("image prune", "", "Remove unused images"),
    _c("image pull", "NAME[:TAG|@DIGEST]", "Download an image from a registry", "pull"),
    _c("image push", "NAME[:TAG]", "Upload an image to a registry", "push"),
    _c("image rm", "IMAGE [IMAGE...]", "Remove one or more images", "image remove", "rmi"),
    _c("image save", "IMAGE [IMAGE...]", "Write one or more images to a tar archive (to stdout by default)",
       "save"),
    _c("image tag", "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", "Give an image another name (TARGET_IMAGE)",
       "tag"),
    _c("builder prune", "", "Remove build cache"),
    # networks
    _c("network connect", "NETWORK CONTAINER", "Attach a container to a network"),
    _c("network create", "NETWORK", "Create a network"),
    _c("network disconnect", "NETWORK CONTAINER", "Detach a container from a network"),
    _c("network inspect", "NETWORK [NETWORK...]", "Show low-level details of one or more networks"),
    _c("network ls", "", "List networks", "network list"),
    _c("network prune", "", "Remove every network no container uses"),
    _c("network rm", "NETWORK [NETWORK...]", "Remove one or more networks", "network remove"),
    # volumes
    _c("volume create", "[VOLUME]", "Create a volume"),
    _c("volume inspect", "VOLUME [VOLUME...]", "Show low-level details of one or more volumes"),
    _c("volume ls", "", "List volumes", "volume list"),
    _c("volume prune", "", "Remove unused volumes"),
    _c("volume rm", "VOLUME [VOLUME...]", "Remove one or more volumes that no container uses",
       "volume remove"),
    # system
    _c("system check", "", "Check the daemon's stored state for damage, and optionally repair it"),
    _c("system df", "", "Show how much disk images, containers, volumes and build cache use"),
    _c("system events", "", "Stream the daemon's events as they happen", "events"),
    _c("system info", "", "Show system-wide information about the daemon", "info"),
    _c("system prune", "", "Remove stopped containers, unused networks, dangling images and build cache"),
    # top level only
    _c("inspect", "NAME|ID [NAME|ID...]", "Show low-level details of containers or images"),
    _c("login", "[SERVER]", "Store credentials for a registry"),
    _c("logout", "[SERVER]", "Forget the credentials stored for a registry"),
    _c("search", "TERM", "Search a registry for images"),
    _c("version", "", "Show the client's and the daemon's version"),
    _c("bootstrap", "busybox [TAG]", "Make a local busybox image from a static busybox binary, no registry "
       "needed"),
    _c("completion", "bash|zsh", "Print a shell completion script for bash or zsh"),
    _c("tls", "COMMAND", "Make a CA and certificates for the daemon and its clients"),
    _c("tls generate", "", "Write a CA, a daemon certificate and a client certificate"),
    _c("context create", "CONTEXT", "Create a context"),
    _c("context inspect", "[CONTEXT...]", "Show low-level details of one or more contexts"),
    _c("context ls", "", "List contexts", "context list"),
    _c("context rm", "CONTEXT [CONTEXT...]", "Remove one or more contexts", "context remove"),
    _c("context show", "", "Print the name of the current context"),
    _c("context update", "CONTEXT", "Change a context"),
    _c("context use", "CONTEXT", "Make a context the current one"),
    _c("registry serve", "", "Serve an OCI registry over HTTP"),
    _c("registry gc", "", "Delete blobs no manifest refers to, and stale uploads"),
)

COMMANDS: dict[str, Command] = {}
for _cmd in _TABLE:
    for _path in _cmd.aliases or (_cmd.path,):
        COMMANDS[_path] = _cmd

# `dockyard --help`: the common commands in this order, the others by name
COMMON_COMMANDS = ("run", "exec", "ps", "build", "pull", "push", "images", "login", "logout", "search",
                   "version", "info")
MANAGEMENT_COMMANDS = frozenset(("builder", "container", "context", "image", "network", "registry", "system",
                                 "volume"))

DESCRIPTION = "A Docker work-alike: build, share and run containers"


def section(name: str) -> str:
    """The section of ``dockyard --help`` a top-level command is listed in."""
    if name in COMMON_COMMANDS:
        return COMMON
    return MANAGEMENT if name in MANAGEMENT_COMMANDS else OTHER


def lookup(path: str) -> Command | None:
    return COMMANDS.get(path)
