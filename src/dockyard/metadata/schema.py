"""Schema migrations, applied in order; ``PRAGMA user_version`` records how far a database got.

Append new migrations at the end; never edit one that has shipped.
"""

MIGRATIONS: list[str] = [
    # 1: images, tags, containers, leases
    """
    CREATE TABLE images (
        id TEXT PRIMARY KEY,            -- config digest, "sha256:<hex>"
        config BLOB NOT NULL,           -- the image config JSON, byte-exact as stored in content/
        manifest_digest TEXT,           -- manifest the image came from (NULL for a config-only load)
        chain_id TEXT,                  -- chain ID of the top layer (NULL for an image without layers)
        size INTEGER NOT NULL DEFAULT 0,-- sum of uncompressed layer sizes
        parent TEXT,                    -- local parent image id (Docker's legacy "Parent"), may be NULL
        created_at REAL NOT NULL        -- when it entered this store (unix seconds)
    );
    CREATE TABLE tags (
        name TEXT PRIMARY KEY,          -- normalised "docker.io/library/busybox:latest"
        image_id TEXT NOT NULL REFERENCES images(id)
    );
    CREATE INDEX tags_image ON tags(image_id);
    CREATE TABLE repo_digests (
        name TEXT NOT NULL,             -- "docker.io/library/busybox@sha256:..."
        image_id TEXT NOT NULL REFERENCES images(id),
        PRIMARY KEY (name, image_id)
    );
    CREATE TABLE containers (
        id TEXT PRIMARY KEY,            -- 64 hex
        name TEXT NOT NULL UNIQUE,      -- without the leading "/"
        image_id TEXT NOT NULL,
        created REAL NOT NULL,
        record BLOB NOT NULL            -- JSON of engine.containers' record (config, host config, state)
    );
    CREATE INDEX containers_image ON containers(image_id);
    CREATE TABLE leases (
        id TEXT PRIMARY KEY,
        created REAL NOT NULL,
        expires REAL
    );
    CREATE TABLE lease_resources (
        lease_id TEXT NOT NULL REFERENCES leases(id) ON DELETE CASCADE,
        kind TEXT NOT NULL,             -- "content" | "snapshot"
        ref TEXT NOT NULL,
        PRIMARY KEY (lease_id, kind, ref)
    );
    """,
    # 2: the build cache: one row per build step, keyed by its input state and instruction
    """
    CREATE TABLE build_cache (
        key TEXT PRIMARY KEY,           -- sha256 over the parent state ID and the step's cache string
        parent TEXT NOT NULL,           -- state ID (config digest) the step started from
        result TEXT NOT NULL,           -- state ID after the step (its config is a blob in content/)
        description TEXT NOT NULL,      -- the instruction, for `builder prune` and `system df`
        size INTEGER NOT NULL DEFAULT 0,-- bytes of the layer the step added (0 for metadata steps)
        created REAL NOT NULL,
        last_used REAL NOT NULL
    );
    CREATE INDEX build_cache_result ON build_cache(result);
    """,
    # 3: IP address management of networks (network/ipam.py)
    """
    CREATE TABLE ipam_subnets (
        network TEXT PRIMARY KEY,       -- network id
        subnet TEXT NOT NULL,           -- "172.18.0.0/16"
        gateway TEXT NOT NULL,
        ip_range TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE ipam_addresses (
        network TEXT NOT NULL REFERENCES ipam_subnets(network) ON DELETE CASCADE,
        address TEXT NOT NULL,
        owner TEXT NOT NULL,            -- endpoint (container id) holding it
        PRIMARY KEY (network, address)
    );
    """,
    # 4: networks (engine/networks.py); endpoints live in the container records
    """
    CREATE TABLE networks (
        id TEXT PRIMARY KEY,            -- 64 hex
        name TEXT NOT NULL UNIQUE,
        created REAL NOT NULL,
        record BLOB NOT NULL            -- JSON of engine.types.NetworkRecord
    );
    """,
    # 5: volumes (engine/volumes.py); which containers use one lives in the container records
    """
    CREATE TABLE volumes (
        name TEXT PRIMARY KEY,
        created REAL NOT NULL,
        record BLOB NOT NULL            -- JSON of engine.types.VolumeRecord
    );
    """,
]
