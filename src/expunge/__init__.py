"""expunge: remove entries matching known-abuse hash lists from image-text training datasets."""

__version__ = "0.1.0"
