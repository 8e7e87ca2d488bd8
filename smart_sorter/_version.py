"""The package's version, in a module of its own so that nothing needs the package face to read it."""

__version__ = "0.1.0"
