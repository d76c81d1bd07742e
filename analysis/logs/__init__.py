"""Log-based detection: log files read into the store (``ingest``), Sigma rules over them
(``sigma``, ``detect``), and listings (``store``). One module per concern; pySigma and evtx are
imported inside the functions that use them."""
