"""imgpipe: validate, describe and render uploaded images, locally or on AWS."""

__version__ = "0.1.0"
