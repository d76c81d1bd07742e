"""Wiretrail recorder: the always-on capture side and the shared core (``recorder.core``)."""

__version__ = "0.1.0"
