"""Version of the hypercorn-protocols distribution (bumped with `hatch version`)."""

__version__ = "0.1.0"
