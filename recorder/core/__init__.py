"""The shared, pure core: capture file I/O, decoding, the flow meter and the store.

Nothing here imports live-capture code, click or rich; ``analysis`` imports only this package.
"""
