"""One router per resource: environments, backups (snapshots), activities."""
