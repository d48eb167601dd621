"""Verdigris: a self-hosted messenger API platform, wire-compatible with the GREEN-API HTTP API."""

__version__ = "0.1.0"
