"""Coding images with a local transformers model (placeholder until the local backend lands)."""
