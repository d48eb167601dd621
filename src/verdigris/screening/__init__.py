"""Screening of outgoing content (T-23): operator rules that block a message or hold it for review."""
