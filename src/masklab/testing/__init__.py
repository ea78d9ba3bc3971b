"""Helpers for testing code that uses masklab: Hypothesis strategies for masks and polygons.

Needs the ``hypothesis`` package (``pip install "masklab[dev]"``).
"""
