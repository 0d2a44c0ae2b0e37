"""Schedules: automatic backups and drills, and the scheduler that starts them."""
