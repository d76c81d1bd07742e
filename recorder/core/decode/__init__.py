"""Packet decoding: link layers, IP and its fragments, tunnels, the fast and slow paths, MAC table."""
