"""Snapshots: taking, listing, restoring, verifying, expiring them, and what runs around that."""
