"""Notifications: signed webhooks for ended activities."""
