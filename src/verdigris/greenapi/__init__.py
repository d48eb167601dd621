"""The GREEN-API dialect, in one place: routing quirks, request parsing, error texts, and the JSON
shapes of answers and notifications. Services never see these shapes; this package translates.
"""
