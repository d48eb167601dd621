"""Contracts the server's output must meet (checked by tests, owned by the test suite)."""
