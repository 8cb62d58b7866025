"""pitr-bundle: generate audited bash bundles for a central PostgreSQL PITR host on ZFS."""

__version__ = "0.1.0"
