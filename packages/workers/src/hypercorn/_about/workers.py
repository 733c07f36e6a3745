"""Version of the hypercorn-workers distribution (bumped with `hatch version`)."""

__version__ = "0.1.0"
