"""Version of the hypercorn-runner distribution (bumped with `hatch version`)."""

__version__ = "0.1.0"
