"""Webhook delivery: pushes each instance's notification queue to its ``webhookUrl`` (docs/webhooks.md)."""
