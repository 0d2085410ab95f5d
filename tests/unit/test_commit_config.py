"""The config a commit writes: body/changes over the container's config (moby's merge rules)."""

from __future__ import annotations

import pytest

from dockyard.engine.commit import CommitOptions, commit_config, image_run_config, merge_configs
from dockyard.engine.types import ContainerConfig, ContainerRecord, HostConfig
from dockyard.errors import InvalidArgument


def record(**cfg: object) -> ContainerRecord:
    return ContainerRecord(id="c" * 64, name="n", created="", image_id="sha256:" + "0" * 64,
                           image_ref="busybox", config=ContainerConfig(**cfg),  # type: ignore[arg-type]
                           host_config=HostConfig())


def test_without_body_the_container_config_is_kept() -> None:
    rec = record(image="busybox", cmd=["sh"], env=["PATH=/bin", "A=1"], labels={"l": "v"},
                 working_dir="/w", hostname="abc", tty=True)
    cfg = commit_config(rec, CommitOptions("c"))
    assert cfg == {"Cmd": ["sh"], "Env": ["PATH=/bin", "A=1"], "Labels": {"l": "v"}, "WorkingDir": "/w"}


def test_body_overrides_and_env_merge() -> None:
    rec = record(cmd=["sh"], env=["PATH=/bin", "A=1"], user="u", exposed_ports={"80/tcp": {}})
    body = ContainerConfig(cmd=["echo"], env=["A=2", "B=3"], exposed_ports={"81/tcp": {}})
    cfg = commit_config(rec, CommitOptions("c", config=body))
    assert cfg["Cmd"] == ["echo"]
    assert cfg["Env"] == ["A=2", "B=3", "PATH=/bin"]
    assert cfg["User"] == "u"
    assert set(cfg["ExposedPorts"]) == {"80/tcp", "81/tcp"}


def test_changes_apply_and_entrypoint_drops_cmd() -> None:
    rec = record(cmd=["sh"], entrypoint=None)
    cfg = commit_config(rec, CommitOptions("c", changes=['ENTRYPOINT ["/bin/ep"]', "ENV X=y"]))
    assert cfg["Entrypoint"] == ["/bin/ep"] and "Cmd" not in cfg and cfg["Env"] == ["X=y"]
    cfg = commit_config(rec, CommitOptions("c", changes=['CMD ["a"]', 'ENTRYPOINT ["/bin/ep"]']))
    assert cfg["Cmd"] == ["a"] and cfg["Entrypoint"] == ["/bin/ep"]


def test_bad_change_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="RUN is not a valid change command"):
        commit_config(record(cmd=["sh"]), CommitOptions("c", changes=["RUN true"]))


def test_merge_keeps_user_entrypoint_without_image_cmd() -> None:
    merged = merge_configs({"Entrypoint": ["x"]}, {"Cmd": ["sh"], "Entrypoint": ["y"]})
    assert merged == {"Entrypoint": ["x"]}
    assert image_run_config(ContainerConfig()) == {}
