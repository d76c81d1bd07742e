"""Zeek's TCP endpoint state machine for the flow meter, compiled with numba: ``tcp_packet``
takes one TCP packet of a connection (its endpoint states, sequence-number tracking with
wrap-around, history letters with their repeat and log-scale rules, out-of-order blocks and
content gaps), ``tcp_size`` gives an endpoint's payload bytes, ``is_reuse`` tells a new
connection on the same ports. ``flowkernel.meter_rows`` drives it, over the state whose columns
``flowcols`` names; ``hist_letter``, ``check_hist`` and ``flip_roles`` (history letters, role flip) serve both.
"""

from __future__ import annotations

from numba import njit

from recorder.core.flow.flowcols import (
    C_ATTEMPT,
    C_CLOSE_COMPLETE,
    C_FIRST_SEEN,
    C_HLEN,
    C_HSEEN,
    C_LAST,
    C_LONG,
    C_MISSED,
    C_OACT,
    C_OBYTES,
    C_OIP,
    C_OPKTS,
    C_ORIG_IS_A,
    C_ORIG_P,
    C_PARTIAL,
    C_RACT,
    C_RBYTES,
    C_RESP_P,
    C_RIP,
    C_RPKTS,
    CLOSED,
    E0,
    E1,
    EPW,
    ESTABLISHED,
    F_ACK,
    F_FIN,
    F_RST,
    F_SYN,
    H_ACK,
    H_DATA,
    H_FIN,
    H_FIN_RST,
    H_MULTI,
    H_RST,
    H_SYN,
    HMAX,
    INACTIVE,
    M32,
    NBLK,
    P_ACK,
    P_AWRAP,
    P_BLK,
    P_CLOSED,
    P_FINC,
    P_FINSEQ,
    P_GC,
    P_GT,
    P_HFIN,
    P_HRST,
    P_HSYN,
    P_LAST,
    P_NB,
    P_PREV,
    P_REASM,
    P_RSTC,
    P_RXC,
    P_RXT,
    P_START,
    P_STATE,
    P_SWRAP,
    P_W0C,
    P_W0T,
    PARTIAL,
    RESET,
    SYN_ACK_SENT,
    SYN_SENT,
    TOO_LARGE_SEQ_DELTA,
)


@njit(cache=True, nogil=True)
def seq_delta(a, b):
    d = (a - b) & M32
    if d & 0x80000000:
        return d - 0x100000000
    return d


@njit(cache=True, nogil=True)
def hist_letter(S, H, s, code):
    n = S[s, C_HLEN]
    if n < HMAX:
        H[s, n] = code
        S[s, C_HLEN] = n + 1


@njit(cache=True, nogil=True)
def check_hist(S, H, s, is_orig, mask, code):
    """Zeek's CheckHistory: add the letter the first time; True if it was seen before."""
    if not is_orig:
        mask = mask << 16
        code = code + 32  # lower case
    if S[s, C_HSEEN] & mask:
        return True
    S[s, C_HSEEN] |= mask
    hist_letter(S, H, s, code)
    return False


@njit(cache=True, nogil=True)
def _add_hist(S, H, s, is_orig, code):
    hist_letter(S, H, s, code if is_orig else code + 32)


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
def flip_roles(S, s):
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
        flip_roles(S, s)
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
            check_hist(S, H, s, is_orig, H_FIN_RST, ord("I"))
        else:
            check_hist(S, H, s, is_orig, H_MULTI, ord("Q"))
    elif bits == 1:
        if syn:
            code = ord("H") if fack else ord("S")
            if check_hist(S, H, s, is_orig, H_SYN, code) and rel_seq != S[s, e + P_HSYN]:
                _add_hist(S, H, s, is_orig, code)
            S[s, e + P_HSYN] = rel_seq
        if fin:
            if check_hist(S, H, s, is_orig, H_FIN, ord("F")) and rel_seq + plen != S[s, e + P_HFIN]:
                _add_hist(S, H, s, is_orig, ord("F"))
            S[s, e + P_HFIN] = rel_seq + plen
        if rst:
            if check_hist(S, H, s, is_orig, H_RST, ord("R")) and rel_seq != S[s, e + P_HRST]:
                _add_hist(S, H, s, is_orig, ord("R"))
            S[s, e + P_HRST] = rel_seq
    else:
        if plen:
            check_hist(S, H, s, is_orig, H_DATA, ord("D"))
        elif fack:
            check_hist(S, H, s, is_orig, H_ACK, ord("A"))

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
                    flip_roles(S, s)
                    hist_letter(S, H, s, ord("^"))
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
