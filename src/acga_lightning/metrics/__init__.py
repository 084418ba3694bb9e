"""Referring-segmentation metrics (issue 3)."""
