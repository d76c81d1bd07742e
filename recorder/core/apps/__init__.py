"""Application layer: TCP stream reassembly, protocol detection and parsers (see ``apps.base``)."""
