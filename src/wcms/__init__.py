"""WCMS: control and monitor a fleet of computers from one server."""

__version__ = "0.1.0"
