"""Shared layers, one concept per file."""
