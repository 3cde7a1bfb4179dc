"""srlive: live super-resolution fluorescence microscopy through Micro-Manager."""

__version__ = "0.1.0"
