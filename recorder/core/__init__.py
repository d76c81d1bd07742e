"""The shared, pure core: capture file I/O, decoding, the flow meter and the store.

Nothing here imports live-capture code, click or rich; ``analysis`` imports only this package.
"""

from recorder.core.compiled import install as _install_compiled

_install_compiled()  # the compiled modules, where built and current (recorder/core/compiled.py)
