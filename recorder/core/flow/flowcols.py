"""The flow meter's state layout, shared by its numba-compiled kernels (``flowkernel``,
``tcpkernel``) and the meter (``flowmeter``): one int64 row per connection slot in ``S`` (the
``C_*`` columns, then the orig endpoint's ``P_*`` columns at ``E0`` and the responder's at
``E1``), the history letters in the uint8 matrix ``H``, the packet rows ``R`` (``R_*``) and the
timeouts ``TO`` (``T_*``). Importing it points numba's cache at a writable directory before
either kernel is compiled.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np


def _numba_cache_dir() -> None:
    """Compiled code is cached beside this file; where that is read-only (a package installed
    root-owned, a service under ProtectSystem=strict) and NUMBA_CACHE_DIR is not set, cache in a
    per-user directory instead -- numba would otherwise refuse to import this module."""
    if os.environ.get("NUMBA_CACHE_DIR"):
        return
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")
    if os.access(here if os.path.isdir(here) else os.path.dirname(here), os.W_OK):
        return
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    if not os.access(base if os.path.isdir(base) else os.path.dirname(base), os.W_OK):
        base = tempfile.gettempdir()
    import numba.core.config

    numba.core.config.CACHE_DIR = os.path.join(base, f"wiretrail-numba-{os.getuid()}")


_numba_cache_dir()

# TCP endpoint states (Zeek's TCP_ENDPOINT_*)
INACTIVE, SYN_SENT, SYN_ACK_SENT, PARTIAL, ESTABLISHED, CLOSED, RESET = 0, 1, 2, 3, 4, 5, 6
# TCP flags
F_FIN, F_SYN, F_RST, F_ACK = 0x01, 0x02, 0x04, 0x10
M32 = 0xFFFFFFFF
TOO_LARGE_SEQ_DELTA = 1048576
# history bits per endpoint (responder's shifted 16 left)
H_SYN, H_FIN, H_RST, H_FIN_RST, H_DATA, H_ACK, H_MULTI = 1, 2, 4, 8, 16, 32, 64
HMAX = 64  # history letters kept per connection
NBLK = 4  # out-of-order blocks kept per direction (bounded memory)

# --- connection columns -------------------------------------------------------------------
(C_ACTIVE, C_PROTO, C_START, C_LAST, C_OPKTS, C_OIP, C_RPKTS, C_RIP, C_OBYTES, C_RBYTES, C_OACT,
 C_RACT, C_HSEEN, C_ORIG_IS_A, C_PARTIAL, C_FIRST_SEEN, C_CLOSE_COMPLETE, C_ATTEMPT, C_MISSED,
 C_LONG, C_ORIG_P, C_RESP_P, C_FOFF, C_CAPTURE, C_ROW, C_HLEN, C_ONEWAY, C_DNS,
 C_K0, C_K1, C_K2, C_K3, C_K4, C_K5, C_KH) = range(35)
# C_K0..C_K5: the canonical key (proto<<1|one_way, a_hi, a_lo, a_port<<16|b_port, b_hi, b_lo) as
# uint64 bit patterns, and C_KH the key's 64-bit hash, written by the meter when a slot is created
E0 = 35
# --- endpoint columns (offsets from E0 / E1) -----------------------------------------------
(P_STATE, P_PREV, P_START, P_LAST, P_ACK, P_SWRAP, P_AWRAP, P_FINC, P_RSTC, P_FINSEQ, P_CLOSED,
 P_HSYN, P_HFIN, P_HRST, P_RXC, P_RXT, P_W0C, P_W0T, P_GC, P_GT, P_REASM, P_NB) = range(22)
P_BLK = 22  # NBLK pairs of (start, end)
EPW = P_BLK + 2 * NBLK
E1 = E0 + EPW
NCOLS = E1 + EPW

# --- row columns (built by the meter from a DecodedBatch) ----------------------------------
(R_PROTO, R_A_IS_SRC, R_SPORT, R_DPORT, R_IPLEN, R_PLEN, R_FLAGS, R_SEQ, R_ACK, R_WIN, R_CAPOK, R_TS,
 R_FOFF, R_ONEWAY, R_BCAST, R_GROUP, R_L4OK) = range(17)
NROW = 17

# --- timeouts (ns) -------------------------------------------------------------------------
(T_TCP_INACT, T_UDP_INACT, T_ICMP_INACT, T_OTHER_INACT, T_ATTEMPT, T_CLOSE, T_LINGER, T_SYN,
 T_SESSION, T_DNS) = range(10)


def new_state(capacity: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((capacity, NCOLS), dtype=np.int64), np.zeros((capacity, HMAX), dtype=np.uint8)
