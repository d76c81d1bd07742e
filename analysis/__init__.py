"""Wiretrail analysis: the ``wiretrail`` CLI for investigators and CI pipelines."""
