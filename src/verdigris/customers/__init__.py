"""The customer database (T-21) and campaigns to consenting contacts with opt-out (T-22)."""
