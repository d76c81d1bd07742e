"""The flow meter's per-packet state machine, compiled with numba.

Every packet of every connection passes through ``meter_rows``: Zeek's TCP endpoint state
machine (conn_state), sequence-number byte counts, history letters with their repeat and
log-scale rules, content gaps (missed_bytes), UDP/ICMP/other counters, connection reuse and the
removal timers. It is written once, as plain Python over numpy arrays: numba compiles it (about
10x faster than interpreting it, see README "Why numba"), and with NUMBA_DISABLE_JIT=1 the very
same code runs interpreted.

It follows the behaviour of Zeek's TCP session analyzer and connection timers (TCPSessionAdapter,
TCP_Endpoint, TCP_Reassembler, conn/main.zeek), re-expressed here.

State is one int64 row per connection slot in ``S`` (columns below) and the history letters in
the uint8 matrix ``H``. Endpoint columns exist twice: orig at ``E0``, resp at ``E1``; a role flip
swaps the two blocks.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
from numba import njit


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


@njit(cache=True, nogil=True)
def seq_delta(a, b):
    d = (a - b) & M32
    if d & 0x80000000:
        return d - 0x100000000
    return d


@njit(cache=True, nogil=True)
def _hist(S, H, s, code):
    n = S[s, C_HLEN]
    if n < HMAX:
        H[s, n] = code
        S[s, C_HLEN] = n + 1


@njit(cache=True, nogil=True)
def _check_hist(S, H, s, is_orig, mask, code):
    """Zeek's CheckHistory: add the letter the first time; True if it was seen before."""
    if not is_orig:
        mask = mask << 16
        code = code + 32  # lower case
    if S[s, C_HSEEN] & mask:
        return True
    S[s, C_HSEEN] |= mask
    _hist(S, H, s, code)
    return False


@njit(cache=True, nogil=True)
def _add_hist(S, H, s, is_orig, code):
    _hist(S, H, s, code if is_orig else code + 32)


@njit(cache=True, nogil=True)
def _scaled(S, H, s, e, is_orig, code, cnt_col, th_col):
    """Zeek's ScaledHistoryEntry: the letter at 1, 10, 100, ... occurrences."""
    cnt = S[s, e + cnt_col] + 1
    th = S[s, e + th_col]
    if cnt == th:
        _add_hist(S, H, s, is_orig, code)
        if th * 10 <= M32:
            S[s, e + th_col] = th * 10
        else:
            cnt = 0
    S[s, e + cnt_col] = cnt


@njit(cache=True, nogil=True)
def _set_state(S, s, e, new):
    if S[s, e + P_STATE] != new:
        S[s, e + P_PREV] = S[s, e + P_STATE]
        S[s, e + P_STATE] = new


@njit(cache=True, nogil=True)
def _flip(S, s):
    """Swap roles: endpoints, counters and ports change sides (Zeek's FlipRoles)."""
    for k in range(EPW):
        tmp = S[s, E0 + k]
        S[s, E0 + k] = S[s, E1 + k]
        S[s, E1 + k] = tmp
    for a, b in ((C_OPKTS, C_RPKTS), (C_OIP, C_RIP), (C_OBYTES, C_RBYTES), (C_OACT, C_RACT),
                 (C_ORIG_P, C_RESP_P)):
        tmp = S[s, a]
        S[s, a] = S[s, b]
        S[s, b] = tmp
    S[s, C_ORIG_IS_A] = 1 - S[s, C_ORIG_IS_A]
    fs = S[s, C_FIRST_SEEN]
    S[s, C_FIRST_SEEN] = (2 if fs & 1 else 0) | (1 if fs & 2 else 0)
    S[s, C_PARTIAL] = 0


@njit(cache=True, nogil=True)
def _flip_history(S, H, s):
    """A flip decided after the fact: '^' first, then the letters so far with their sides swapped."""
    n = S[s, C_HLEN]
    if n >= HMAX:
        n = HMAX - 1
    for i in range(n, 0, -1):
        c = H[s, i - 1]
        if 65 <= c <= 90:
            c += 32
        elif 97 <= c <= 122:
            c -= 32
        H[s, i] = c
    H[s, 0] = ord("^")
    S[s, C_HLEN] = n + 1


@njit(cache=True, nogil=True)
def _relative(S, s, e, cur, last, wraps):
    """Zeek's get_relative_seq: (relative sequence, underflow)."""
    delta = seq_delta(cur, last)
    if delta < 0:
        if wraps and cur > last:
            wraps -= 1
    elif delta > 0:
        if cur < last:
            wraps += 1
    if wraps == 0:
        d = seq_delta(cur, S[s, e + P_START])
        return d, d < 0
    return ((wraps << 32) | cur) - S[s, e + P_START], False


@njit(cache=True, nogil=True)
def _init_seqs(S, s, e, start, ack, last):
    S[s, e + P_START] = start & M32
    S[s, e + P_ACK] = ack & M32
    S[s, e + P_LAST] = last & M32


@njit(cache=True, nogil=True)
def _update_last(S, s, e, seq):
    if seq < S[s, e + P_LAST]:
        S[s, e + P_SWRAP] += 1
    S[s, e + P_LAST] = seq


@njit(cache=True, nogil=True)
def tcp_size(S, s, e, p):
    """Payload bytes an endpoint sent, from sequence numbers (Zeek's TCP_Endpoint::Size)."""
    start = S[s, e + P_START]
    ack64 = (S[s, e + P_AWRAP] << 32) | S[s, e + P_ACK]
    if (S[s, e + P_PREV] == SYN_SENT and S[s, e + P_STATE] == RESET and S[s, p + P_STATE] == INACTIVE
            and not (ack64 == start or ack64 == start + 1)):
        return 0
    last64 = (S[s, e + P_SWRAP] << 32) | S[s, e + P_LAST]
    size = (max(ack64, last64)) - start
    if size < 0:  # Zeek would print an unsigned wrap-around here; nothing sensible to report
        return 0
    if size:
        size -= 1
    if S[s, e + P_FINC] and size:
        size -= 1
    return size


@njit(cache=True, nogil=True)
def _clean(S, s, e):
    st = S[s, e + P_STATE]
    return st == ESTABLISHED or (st == CLOSED and S[s, e + P_PREV] == ESTABLISHED)


@njit(cache=True, nogil=True)
def _absorb(S, s, e):
    """Move the in-order point past any buffered out-of-order block it now reaches."""
    moved = True
    while moved:
        moved = False
        nb = S[s, e + P_NB]
        i = 0
        while i < nb:
            bs = S[s, e + P_BLK + 2 * i]
            be = S[s, e + P_BLK + 2 * i + 1]
            if bs <= S[s, e + P_REASM]:
                if be > S[s, e + P_REASM]:
                    S[s, e + P_REASM] = be
                    moved = True
                nb -= 1
                S[s, e + P_BLK + 2 * i] = S[s, e + P_BLK + 2 * nb]
                S[s, e + P_BLK + 2 * i + 1] = S[s, e + P_BLK + 2 * nb + 1]
                S[s, e + P_NB] = nb
            else:
                i += 1


@njit(cache=True, nogil=True)
def _data_sent(S, s, e, rel, plen):
    end = rel + plen
    if end <= S[s, e + P_REASM]:
        return
    if rel <= S[s, e + P_REASM]:
        S[s, e + P_REASM] = end
        _absorb(S, s, e)
    else:
        nb = S[s, e + P_NB]
        if nb < NBLK:
            S[s, e + P_BLK + 2 * nb] = rel
            S[s, e + P_BLK + 2 * nb + 1] = end
            S[s, e + P_NB] = nb + 1


@njit(cache=True, nogil=True)
def _ack_received(S, H, s, e, p, is_orig_e, rel_ack):
    """The peer acknowledged e's data up to rel_ack: what was never seen below it is a gap."""
    if S[s, e + P_FINC] and rel_ack >= S[s, e + P_FINSEQ]:
        rel_ack = S[s, e + P_FINSEQ] - 1
    if rel_ack <= S[s, e + P_REASM]:
        return
    if rel_ack <= 2 and S[s, C_PARTIAL]:
        return
    while rel_ack > S[s, e + P_REASM]:
        nb = S[s, e + P_NB]
        nxt = -1
        for i in range(nb):
            bs = S[s, e + P_BLK + 2 * i]
            if nxt < 0 or bs < nxt:
                nxt = bs
        upto = rel_ack if (nxt < 0 or nxt >= rel_ack) else nxt
        gap = upto - S[s, e + P_REASM]
        if gap > 0:
            if _clean(S, s, e) and _clean(S, s, p):
                _scaled(S, H, s, e, is_orig_e, ord("G"), P_GC, P_GT)
                S[s, C_MISSED] += gap
            S[s, e + P_REASM] = upto
        _absorb(S, s, e)
        if nxt < 0 or nxt >= rel_ack:
            break


@njit(cache=True, nogil=True)
def is_reuse(S, s, flags, seq):
    """Zeek's IsReuse: does this SYN start a new connection on an old 5-tuple?"""
    if not flags & F_SYN:
        return False
    co = E0
    if flags & F_ACK:
        if S[s, E0 + P_STATE] != INACTIVE:
            return False
        co = E1
    closed = S[s, E0 + P_CLOSED] or S[s, E1 + P_CLOSED]
    if not closed:
        if seq == S[s, co + P_START]:
            return False
        if (not flags & F_ACK and S[s, co + P_STATE] == SYN_ACK_SENT and S[s, E1 + P_STATE] == INACTIVE
                and seq == S[s, E1 + P_START]):
            return False
    return True


@njit(cache=True, nogil=True)
def tcp_packet(S, H, s, is_orig, flags, seq, ack, win, plen, cap_ok, ts):
    """One TCP packet through Zeek's TCP session logic. Returns True if it flipped the roles."""
    syn = flags & F_SYN
    fin = flags & F_FIN
    rst = flags & F_RST
    fack = flags & F_ACK
    flipped = False

    # A connection that began with a SYN-ACK, followed by an ACK or data in either direction, is a
    # real connection whose SYN was missed (a stealth scan draws a RST or nothing): the SYN-ACK's
    # sender is the responder (Zeek flips it so since 5.1).
    if (S[s, E0 + P_STATE] == SYN_ACK_SENT and S[s, E1 + P_STATE] == INACTIVE and not (syn or fin or rst)
            and (fack or plen > 0)):
        _flip(S, s)
        _flip_history(S, H, s)
        _set_state(S, s, E1, ESTABLISHED)
        is_orig = not is_orig
        flipped = True

    e = E0 if is_orig else E1
    p = E1 if is_orig else E0

    # partial status
    if is_orig:
        if not S[s, C_FIRST_SEEN] & 1:
            S[s, C_PARTIAL] = 1 if ((not syn) or fack) else 0
    elif not S[s, C_FIRST_SEEN] & 2 and not S[s, C_PARTIAL]:
        S[s, C_PARTIAL] = 0 if syn else 1

    seg_len = plen + (1 if syn else 0) + (1 if fin else 0)
    if rst:
        seg_len -= plen
    seq_end = (seq + seg_len) & M32

    # init_endpoint
    st = S[s, e + P_STATE]
    if st == INACTIVE:
        if syn:
            S[s, e + P_ACK] = seq
            S[s, e + P_START] = seq
            S[s, e + P_LAST] = seq_end
        else:
            S[s, e + P_ACK] = (seq - 1) & M32
            S[s, e + P_START] = (seq - 1) & M32
            S[s, e + P_LAST] = seq
    elif st == SYN_SENT or st == SYN_ACK_SENT:
        if syn and seq != S[s, e + P_START]:
            _init_seqs(S, s, e, seq, seq, seq_end)
    elif st == ESTABLISHED or st == PARTIAL:
        if syn:
            _init_seqs(S, s, e, seq, seq, seq_end)
    elif st == RESET:
        if syn and S[s, e + P_PREV] == INACTIVE:
            _init_seqs(S, s, e, seq, seq, seq_end)

    rel_seq, underflow = _relative(S, s, e, seq, S[s, e + P_LAST], S[s, e + P_SWRAP])

    # history
    bits = (1 if syn else 0) + (1 if fin else 0) + (1 if rst else 0)
    if bits > 1:
        if fin and rst:
            _check_hist(S, H, s, is_orig, H_FIN_RST, ord("I"))
        else:
            _check_hist(S, H, s, is_orig, H_MULTI, ord("Q"))
    elif bits == 1:
        if syn:
            code = ord("H") if fack else ord("S")
            if _check_hist(S, H, s, is_orig, H_SYN, code) and rel_seq != S[s, e + P_HSYN]:
                _add_hist(S, H, s, is_orig, code)
            S[s, e + P_HSYN] = rel_seq
        if fin:
            if _check_hist(S, H, s, is_orig, H_FIN, ord("F")) and rel_seq + plen != S[s, e + P_HFIN]:
                _add_hist(S, H, s, is_orig, ord("F"))
            S[s, e + P_HFIN] = rel_seq + plen
        if rst:
            if _check_hist(S, H, s, is_orig, H_RST, ord("R")) and rel_seq != S[s, e + P_HRST]:
                _add_hist(S, H, s, is_orig, ord("R"))
            S[s, e + P_HRST] = rel_seq
    else:
        if plen:
            _check_hist(S, H, s, is_orig, H_DATA, ord("D"))
        elif fack:
            _check_hist(S, H, s, is_orig, H_ACK, ord("A"))

    # zero window
    if win == 0 and not rst and S[s, p + P_STATE] != CLOSED and S[s, e + P_STATE] != RESET:
        _scaled(S, H, s, e, is_orig, ord("W"), P_W0C, P_W0T)

    if not (S[s, E0 + P_CLOSED] and S[s, E1 + P_CLOSED]):
        S[s, C_LAST] = ts

    if fin:
        S[s, e + P_FINC] += 1
        S[s, e + P_FINSEQ] = rel_seq + seg_len
    if rst:
        S[s, e + P_RSTC] += 1

    rel_ack = 0
    if fack:
        if S[s, p + P_STATE] == INACTIVE:
            rel_ack = 1
            _init_seqs(S, s, p, ack - 1, ack - 1, ack - 1)
        else:
            rel_ack, ack_under = _relative(S, s, p, ack, S[s, p + P_ACK], S[s, p + P_AWRAP])
            if ack_under:
                rel_ack = 0
            elif not rst:
                d = seq_delta(ack, S[s, p + P_ACK])
                if not (ack == 0 and d > TOO_LARGE_SEQ_DELTA) and d > 0:
                    if ack < S[s, p + P_ACK]:
                        S[s, p + P_AWRAP] += 1
                    S[s, p + P_ACK] = ack

    # update_last_seq
    delta_last = seq_delta(seq_end, S[s, e + P_LAST])
    if (syn or rst) and (delta_last > TOO_LARGE_SEQ_DELTA or delta_last < -TOO_LARGE_SEQ_DELTA):
        pass
    elif fin and S[s, e + P_LAST] == ((S[s, e + P_START] + 1) & M32):
        _update_last(S, s, e, seq_end)
    elif S[s, e + P_STATE] == RESET:
        pass
    elif delta_last > 0:
        _update_last(S, s, e, seq_end)
    elif plen > 0:
        _scaled(S, H, s, e, is_orig, ord("T"), P_RXC, P_RXT)

    # state machine
    do_close = False
    st = S[s, e + P_STATE]
    pst = S[s, p + P_STATE]
    if st == INACTIVE:
        if syn:
            if is_orig:
                _set_state(S, s, e, SYN_ACK_SENT if fack else SYN_SENT)
                S[s, C_ATTEMPT] = 1
            else:
                if not fack and pst == SYN_ACK_SENT and seq == S[s, e + P_START]:
                    # SYN and SYN-ACK seen in reverse order: flip roles and establish
                    _flip(S, s)
                    _hist(S, H, s, ord("^"))
                    flipped = True
                    e, p = p, e
                    is_orig = not is_orig
                    _set_state(S, s, p, ESTABLISHED)
                    S[s, C_FIRST_SEEN] |= 1
                if S[s, p + P_STATE] == SYN_SENT:
                    _set_state(S, s, p, ESTABLISHED)
                _set_state(S, s, e, ESTABLISHED)
        if fin:
            _set_state(S, s, e, CLOSED)
            do_close = True
        if rst:
            _set_state(S, s, e, RESET)
            do_close = True
        if S[s, e + P_STATE] == INACTIVE:
            if (not is_orig) and plen == 0 and S[s, E0 + P_STATE] == SYN_SENT:
                pass
            elif fack and S[s, p + P_STATE] == ESTABLISHED:
                _set_state(S, s, e, ESTABLISHED)
                S[s, C_PARTIAL] = 0
                S[s, C_FIRST_SEEN] |= 1 if is_orig else 2
            else:
                _set_state(S, s, e, PARTIAL)
    elif st == SYN_SENT or st == SYN_ACK_SENT:
        if fin:
            _set_state(S, s, e, CLOSED)
            do_close = True
        if rst:
            _set_state(S, s, e, RESET)
            do_close = True
    elif st == ESTABLISHED or st == PARTIAL:
        if syn and st == PARTIAL and pst == INACTIVE and not fack:
            _set_state(S, s, e, SYN_SENT)
        if fin and not rst:
            _set_state(S, s, e, CLOSED)
            if S[s, p + P_STATE] == RESET and S[s, p + P_PREV] == CLOSED:
                _set_state(S, s, p, CLOSED)
            do_close = True
        if rst:
            _set_state(S, s, e, RESET)
            do_close = True
    elif st == CLOSED:
        if rst and pst != CLOSED:
            _set_state(S, s, e, RESET)
            if not S[s, e + P_CLOSED]:
                do_close = True
            S[s, C_CLOSE_COMPLETE] = 1  # Zeek's reset timer removes it tcp_reset_delay later

    if fack:
        _ack_received(S, H, s, p, e, not is_orig, rel_ack)

    rel_data_seq = rel_seq + 1 if syn else rel_seq
    if plen > 0 and cap_ok and not rst and not underflow:
        _data_sent(S, s, e, rel_data_seq, plen)

    S[s, C_FIRST_SEEN] |= 1 if is_orig else 2

    if do_close and not S[s, e + P_CLOSED]:
        S[s, e + P_CLOSED] = 1
        if S[s, e + P_STATE] == RESET or S[s, p + P_CLOSED] or S[s, p + P_STATE] == INACTIVE:
            S[s, C_CLOSE_COMPLETE] = 1
    if S[s, E0 + P_STATE] >= PARTIAL or S[s, E1 + P_STATE] >= PARTIAL:
        S[s, C_LONG] = 1
    return flipped


@njit(cache=True, nogil=True)
def deadline(S, s, TO):
    """When Zeek's timers remove connection s, given its state after its last packet."""
    proto = S[s, C_PROTO]
    last = S[s, C_LAST]
    if proto != 6:
        if proto == 17:
            if S[s, C_DNS]:
                # Zeek's DNS analyzer timer: fires every dns_session_timeout from the start and
                # removes the connection once it has been quiet for dns_session_timeout - 1 s
                k = (last + TO[T_DNS] - 1_000_000_000 - S[s, C_START] + TO[T_DNS] - 1) // TO[T_DNS]
                k = max(k, 1)
                return min(last + TO[T_UDP_INACT], S[s, C_START] + k * TO[T_DNS])
            return last + TO[T_UDP_INACT]
        if proto == 1 or proto == 58:
            return last + TO[T_ICMP_INACT]
        return last + TO[T_OTHER_INACT]
    best = last + (TO[T_TCP_INACT] if S[s, C_LONG] else TO[T_UDP_INACT])
    ost = S[s, E0 + P_STATE]
    rst = S[s, E1 + P_STATE]
    if S[s, C_CLOSE_COMPLETE]:
        best = min(best, last + TO[T_CLOSE])
    else:
        oc = S[s, E0 + P_CLOSED]
        rc = S[s, E1 + P_CLOSED]
        if ((oc or rc) and ((oc and rc) or ost == RESET or rst == RESET or ost == INACTIVE
                            or rst == INACTIVE)) or (ost == INACTIVE and rst == INACTIVE):
            first = S[s, C_START] + TO[T_SYN]
            limit = last + TO[T_LINGER]
            if limit < first:
                t_fire = first
            else:
                t_fire = first + ((limit - first) // TO[T_SESSION] + 1) * TO[T_SESSION]
            best = min(best, t_fire)
    if S[s, C_ATTEMPT] and (ost == SYN_SENT or ost == SYN_ACK_SENT) and rst == INACTIVE:
        best = min(best, S[s, C_START] + TO[T_ATTEMPT])
    return best


@njit(cache=True, nogil=True)
def _new_conn(S, H, s, R, r, likely_tcp, likely_udp, dns_udp, capture_id):
    for k in range(NCOLS):
        S[s, k] = 0
    proto = R[r, R_PROTO]
    sport = R[r, R_SPORT]
    dport = R[r, R_DPORT]
    flags = R[r, R_FLAGS]
    S[s, C_ACTIVE] = 1
    S[s, C_PROTO] = proto
    S[s, C_START] = R[r, R_TS]
    S[s, C_LAST] = R[r, R_TS]
    S[s, C_ORIG_IS_A] = R[r, R_A_IS_SRC]
    S[s, C_ORIG_P] = sport
    S[s, C_RESP_P] = dport
    S[s, C_FOFF] = R[r, R_FOFF]
    S[s, C_CAPTURE] = capture_id
    S[s, C_ROW] = r
    S[s, C_ONEWAY] = R[r, R_ONEWAY]
    for e in (E0, E1):
        S[s, e + P_RXT] = 1
        S[s, e + P_W0T] = 1
        S[s, e + P_GT] = 1
        S[s, e + P_REASM] = 1
    flip = False
    if proto == 6:
        if not flags & F_SYN or flags & F_ACK:
            if likely_tcp[sport]:
                if likely_tcp[dport]:
                    flip = (not flags & F_SYN) and sport < dport
                else:
                    flip = True
    elif proto == 17:
        flip = likely_udp[sport] and not likely_udp[dport]
    if flip and not R[r, R_BCAST]:
        _flip(S, s)
        _hist(S, H, s, ord("^"))
    if proto == 17 and dns_udp[S[s, C_RESP_P]]:
        S[s, C_DNS] = 1


@njit(cache=True, nogil=True)
def meter_rows(S, H, R, gslot, free, nfree, finished, created, likely_tcp, likely_udp, dns_udp, TO,
               capture_id):
    """Meter rows R (ordered by packet) into connection slots.

    gslot[g] is the slot of group (canonical key) g, or -1; it is updated as connections end and
    start. New slots come from free[:nfree]; slots of connections that ended are written to
    ``finished`` and new ones to ``created``. Returns (nfree, nfinished, ncreated).
    """
    nfin = 0
    ncre = 0
    for r in range(R.shape[0]):
        g = R[r, R_GROUP]
        s = gslot[g]
        ts = R[r, R_TS]
        proto = R[r, R_PROTO]
        if s >= 0:
            if deadline(S, s, TO) <= ts or (proto == 6 and is_reuse(S, s, R[r, R_FLAGS], R[r, R_SEQ])):
                finished[nfin] = s
                nfin += 1
                S[s, C_ACTIVE] = 0
                s = -1
        if s < 0:
            nfree -= 1
            s = free[nfree]
            _new_conn(S, H, s, R, r, likely_tcp, likely_udp, dns_udp, capture_id)
            gslot[g] = s
            created[ncre] = s
            ncre += 1
        if not R[r, R_L4OK]:
            # the transport header is cut short: Zeek keeps the connection but counts nothing
            continue
        is_orig = R[r, R_A_IS_SRC] == S[s, C_ORIG_IS_A]
        ip_len = R[r, R_IPLEN]
        plen = R[r, R_PLEN]
        if proto == 6:
            if tcp_packet(S, H, s, is_orig, R[r, R_FLAGS], R[r, R_SEQ], R[r, R_ACK], R[r, R_WIN], plen,
                          R[r, R_CAPOK], ts):
                is_orig = not is_orig  # counted on its side after the flip
        else:
            S[s, C_LAST] = ts
            if proto == 17 or proto == 1 or proto == 58:
                if is_orig:
                    S[s, C_OBYTES] += plen
                else:
                    S[s, C_RBYTES] += plen
            if is_orig:
                if not S[s, C_OACT]:
                    S[s, C_OACT] = 1
                    if proto == 17:
                        _check_hist(S, H, s, True, 1, ord("D"))
            else:
                if not S[s, C_RACT]:
                    S[s, C_RACT] = 1
                    if proto == 17:
                        _check_hist(S, H, s, True, 2, ord("d"))
        if is_orig:
            S[s, C_OPKTS] += 1
            S[s, C_OIP] += ip_len
        else:
            S[s, C_RPKTS] += 1
            S[s, C_RIP] += ip_len
    return nfree, nfin, ncre


@njit(cache=True, nogil=True)
def expired(S, now, TO, out):
    """Slots whose removal time has passed; returns how many were written to ``out``."""
    n = 0
    for s in range(S.shape[0]):
        if S[s, C_ACTIVE] and deadline(S, s, TO) <= now:
            S[s, C_ACTIVE] = 0
            out[n] = s
            n += 1
    return n


@njit(cache=True, nogil=True)
def _rstos0(H, s, n):
    """Zeek's /^\\^?S[^HAFGIQ]*R.*/ on the history."""
    i = 0
    if i < n and H[s, i] == ord("^"):
        i += 1
    if i >= n or H[s, i] != ord("S"):
        return False
    i += 1
    while i < n:
        c = H[s, i]
        if c == ord("R"):
            return True
        if c == ord("H") or c == ord("A") or c == ord("F") or c == ord("G") or c == ord("I") or c == ord("Q"):
            return False
        i += 1
    return False




@njit(cache=True, nogil=True)
def summarize(S, H, slots, out):
    """Per finished slot: orig_bytes, resp_bytes, conn_state code (index into flowrows.CONN_STATES)."""
    for i in range(slots.shape[0]):
        s = slots[i]
        proto = S[s, C_PROTO]
        if proto == 6:
            ob = tcp_size(S, s, E0, E1)
            rb = tcp_size(S, s, E1, E0)
            os_ = S[s, E0 + P_STATE]
            rs = S[s, E1 + P_STATE]
            oi = os_ == INACTIVE or os_ == PARTIAL
            ri = rs == INACTIVE or rs == PARTIAL
            if rs == RESET:
                if os_ == SYN_SENT or os_ == SYN_ACK_SENT or (os_ == RESET and ob == 0 and rb == 0):
                    st = 3
                elif oi:
                    st = 9
                else:
                    st = 7
            elif os_ == RESET:
                if ri:
                    st = 8 if _rstos0(H, s, S[s, C_HLEN]) else 12
                else:
                    st = 6
            elif rs == CLOSED and os_ == CLOSED:
                st = 2
            elif os_ == CLOSED:
                st = 10 if ri else 4
            elif rs == CLOSED:
                st = 11 if oi else 5
            elif os_ == SYN_SENT and rs == INACTIVE:
                st = 0
            elif os_ == ESTABLISHED and rs == ESTABLISHED:
                st = 1
            else:
                st = 12
        else:
            if proto == 17 or proto == 1 or proto == 58:
                ob = S[s, C_OBYTES]
                rb = S[s, C_RBYTES]
            else:
                ob = 0
                rb = 0
            if proto == 17:
                if S[s, C_OACT]:
                    st = 2 if S[s, C_RACT] else 0
                else:
                    st = 11 if S[s, C_RACT] else 12
            else:
                st = 12
        out[i, 0] = ob
        out[i, 1] = rb
        out[i, 2] = st


def new_state(capacity: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros((capacity, NCOLS), dtype=np.int64), np.zeros((capacity, HMAX), dtype=np.uint8)
