"""Checkpoints of sparse tables beside TF's own, and key -> embedding export."""
