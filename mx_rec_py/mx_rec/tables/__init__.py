"""Embedding tables: their configuration, deterministic initial rows and the table object."""
