"""Exponential backoff: how long to wait before trying again after failures in a row."""

from __future__ import annotations

__all__ = ["exponential_backoff"]

# Past this many doublings every wait is at its cap (2**64 times any base exceeds any sane
# cap), and the power stays a finite float however long the failures go on: 0.05 * 2**1100
# would raise OverflowError, ending the loop that asked.
_MAX_DOUBLINGS = 64


def exponential_backoff(failures: int, base: float, cap: float) -> float:
    """The wait after ``failures`` failures in a row, in the unit of ``base`` and ``cap``:
    ``base`` after the first (and for 0), doubled after each further one, at most ``cap``."""
    doublings = min(max(failures - 1, 0), _MAX_DOUBLINGS)
    return float(min(base * 2**doublings, cap))
