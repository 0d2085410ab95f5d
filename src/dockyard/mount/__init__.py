"""Mounts: the ``Mount`` description and the only code outside the runtime that calls mount(2)."""

from dockyard.mount.mount import (
    MNT_DETACH,
    Mount,
    mount_all,
    sys_mount,
    sys_umount,
    unmount_all,
)

__all__ = ["MNT_DETACH", "Mount", "mount_all", "sys_mount", "sys_umount", "unmount_all"]
