"""Pure OCI data: digests, descriptors, media types, references. No I/O."""
