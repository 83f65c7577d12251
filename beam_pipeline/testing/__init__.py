"""Helpers for testing code that uses beam_pipeline (a fake embeddings server on 127.0.0.1)."""
