"""Local images: pull results, unpack, tag, remove, save/load (docker-archive + OCI layout), import."""

from dockyard.images.service import ImageService

__all__ = ["ImageService"]
