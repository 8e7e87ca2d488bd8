"""The notebook widgets: the sorting form and the review widget (ipywidgets, imported here only)."""
