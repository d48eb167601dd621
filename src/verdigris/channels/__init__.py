"""Channels: connectors to messenger networks behind one interface (see channels.base)."""
