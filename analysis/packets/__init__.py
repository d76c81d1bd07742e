"""A flow's packets from the capture files through the packet index: ``extract`` (pcap/pcapng
out), ``select`` (which flows), ``dissect`` (tshark's view and the reassembled streams)."""
