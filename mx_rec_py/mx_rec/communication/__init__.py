"""Collectives between ranks (single process for now; Horovod plugs in behind the same functions)."""
