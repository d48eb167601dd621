"""The outgoing-queue policy engine: quiet hours, a daily cap and auto-pause per instance."""
