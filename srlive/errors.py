"""Errors every layer may raise (the bottom of srlive: nothing here imports srlive)."""

from __future__ import annotations


class SafetyError(ValueError):
    """A requested setting is outside the profile's hard limits."""
