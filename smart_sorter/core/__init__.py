"""The pure core: labels, scoring, folder names and output rows. Arrays, labels and options in,
dataclasses and rows out; no file access, no printing."""
