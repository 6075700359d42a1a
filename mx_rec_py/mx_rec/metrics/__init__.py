"""Evaluation metrics combined over ranks."""
