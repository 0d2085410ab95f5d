"""OCI distribution (v1.1) registry server: ``dockyard registry serve|gc`` (see docs/registry.md)."""
