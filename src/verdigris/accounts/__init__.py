"""People and organisations: operator and licensee accounts, partner tokens (more in issue 5)."""
