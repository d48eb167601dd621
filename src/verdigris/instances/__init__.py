"""Instances: one linked messenger account each; lifecycle, settings, state machine, tokens, linking."""
