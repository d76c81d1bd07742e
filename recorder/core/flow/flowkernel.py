"""The flow meter's per-packet state machine, compiled with numba.

Every packet of every connection passes through ``meter_rows``: Zeek's TCP endpoint state
machine (conn_state, in ``tcpkernel``), sequence-number byte counts, history letters with their repeat and
log-scale rules, content gaps (missed_bytes), UDP/ICMP/other counters, connection reuse and the
removal timers. It is written once, as plain Python over numpy arrays: numba compiles it (about
10x faster than interpreting it, see README "Why numba"), and with NUMBA_DISABLE_JIT=1 the very
same code runs interpreted.

It follows the behaviour of Zeek's TCP session analyzer and connection timers (TCPSessionAdapter,
TCP_Endpoint, TCP_Reassembler, conn/main.zeek), re-expressed here.

State is one int64 row per connection slot in ``S`` (its columns: ``flowcols``) and the history letters in
the uint8 matrix ``H``. Endpoint columns exist twice: orig at ``E0``, resp at ``E1``; a role flip
swaps the two blocks.
"""

from __future__ import annotations

from numba import njit

from recorder.core.flow.flowcols import (
    C_ACTIVE,
    C_ATTEMPT,
    C_CAPTURE,
    C_CLOSE_COMPLETE,
    C_DNS,
    C_FOFF,
    C_HLEN,
    C_LAST,
    C_LONG,
    C_OACT,
    C_OBYTES,
    C_OIP,
    C_ONEWAY,
    C_OPKTS,
    C_ORIG_IS_A,
    C_ORIG_P,
    C_PROTO,
    C_RACT,
    C_RBYTES,
    C_RESP_P,
    C_RIP,
    C_ROW,
    C_RPKTS,
    C_START,
    CLOSED,
    E0,
    E1,
    ESTABLISHED,
    F_ACK,
    F_SYN,
    INACTIVE,
    NCOLS,
    P_CLOSED,
    P_GT,
    P_REASM,
    P_RXT,
    P_STATE,
    P_W0T,
    PARTIAL,
    R_A_IS_SRC,
    R_ACK,
    R_BCAST,
    R_CAPOK,
    R_DPORT,
    R_FLAGS,
    R_FOFF,
    R_GROUP,
    R_IPLEN,
    R_L4OK,
    R_ONEWAY,
    R_PLEN,
    R_PROTO,
    R_SEQ,
    R_SPORT,
    R_TS,
    R_WIN,
    RESET,
    SYN_ACK_SENT,
    SYN_SENT,
    T_ATTEMPT,
    T_CLOSE,
    T_DNS,
    T_ICMP_INACT,
    T_LINGER,
    T_OTHER_INACT,
    T_SESSION,
    T_SYN,
    T_TCP_INACT,
    T_UDP_INACT,
)
from recorder.core.flow.tcpkernel import check_hist, flip_roles, hist_letter, is_reuse, tcp_packet, tcp_size


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
        flip_roles(S, s)
        hist_letter(S, H, s, ord("^"))
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
                        check_hist(S, H, s, True, 1, ord("D"))
            else:
                if not S[s, C_RACT]:
                    S[s, C_RACT] = 1
                    if proto == 17:
                        check_hist(S, H, s, True, 2, ord("d"))
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
