"""Version of the hypercorn-cli distribution (bumped with `hatch version`)."""

__version__ = "0.1.0"
