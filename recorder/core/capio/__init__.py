"""Capture file I/O: pcap and pcapng reading, the pcap writer, damaged-record recovery."""
