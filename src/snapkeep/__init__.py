"""snapkeep: snapshots of application environments (database + mounts, never code)."""

__version__ = "0.1.0"
