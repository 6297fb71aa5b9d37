"""Talking to Temporal from outside a run: connecting, starting, following, deciding."""
