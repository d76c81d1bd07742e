"""The ingest pipeline: capture files -> decoder -> flow meter -> store, with the protocol parsers
and inspectors beside it in their own processes (``ingest``), and the one way a child process is
run (``child``)."""
