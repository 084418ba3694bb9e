"""Placeholder: filled by the video-encoder work (issue 2)."""
