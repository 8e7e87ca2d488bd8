"""The things a user runs on a destination: sort, re-sort, undo and applying corrections."""
