"""Lake: an open medallion data lake for images, with its own captioning model."""

__version__ = "0.1.0"
