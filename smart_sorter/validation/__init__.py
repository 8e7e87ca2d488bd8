"""Checking a sorting: hand-labelled samples, evaluation against them, and the HTML report."""
