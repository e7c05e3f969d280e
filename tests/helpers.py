"""Test helpers shared by several modules (real servers, no mocks)."""

from agrl.serve import serving

__all__ = ["serving"]
