"""Helpers several test modules share (data, rank tables): tests import them from here, never from
another test module."""
