"""The flow meter: its numba kernel, the canonical flow key and uid, flow rows, the packet index."""
