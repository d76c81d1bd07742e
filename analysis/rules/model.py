"""A parsed Suricata-syntax rule, as frozen value objects.

A rule keeps its options twice: ``options`` is every ``keyword: value`` in the order written (for
printing and for keywords the engine only passes through), and the typed fields below are what a
matcher reads. Payload inspections (content, pcre, byte_test, byte_jump, isdataat, bsize) are kept
in order in ``matches``, each with the buffer it inspects (``payload`` without a sticky buffer or
``http_*`` modifier) and the transforms (``dotprefix``...) applied to that buffer.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from analysis.rules.variables import AddressSpec, PortSpec
from recorder.core.errors import ProblemsError, WiretrailError

PAYLOAD = "payload"
BASE64_DATA = "base64.data"  # what base64_decode decoded: inspected only through it (base64_data)


class Action(enum.Enum):
    ALERT = "alert"
    PASS = "pass"
    DROP = "drop"
    REJECT = "reject"
    REJECTSRC = "rejectsrc"
    REJECTDST = "rejectdst"
    REJECTBOTH = "rejectboth"


class Direction(enum.Enum):
    TO_DST = "->"
    BOTH = "<>"


@dataclass(frozen=True, slots=True)
class NumberTest:
    """``N``, ``<N``, ``>N``, ``<=N``, ``>=N``, ``!N``, ``N<>M`` (exclusive range), ``N-M`` (inclusive)."""

    op: str  # one of = != < > <= >= <> -
    value: int
    value2: int | None = None

    def test(self, x: int) -> bool:
        op, v = self.op, self.value
        if op == "=":
            return x == v
        if op == "!=":
            return x != v
        if op == "<":
            return x < v
        if op == ">":
            return x > v
        if op == "<=":
            return x <= v
        if op == ">=":
            return x >= v
        assert self.value2 is not None
        if op == "<>":
            return v < x < self.value2
        return v <= x <= self.value2


@dataclass(frozen=True, slots=True)
class Content:
    pattern: bytes
    buffer: str = PAYLOAD
    transforms: tuple[str, ...] = ()
    negated: bool = False
    nocase: bool = False
    depth: int | None = None
    offset: int | None = None
    distance: int | None = None
    within: int | None = None
    startswith: bool = False
    endswith: bool = False
    fast_pattern: bool = False
    fast_pattern_only: bool = False
    fast_pattern_chop: tuple[int, int] | None = None  # (offset, length)
    rawbytes: bool = False

    @property
    def relative(self) -> bool:
        return self.distance is not None or self.within is not None


@dataclass(frozen=True, slots=True)
class Pcre:
    source: str  # the pattern as written between the slashes
    flags: str  # every flag as written
    regex: re.Pattern[bytes]  # compiled (i, s, m, x applied); the engine handles the others
    buffer: str = PAYLOAD
    transforms: tuple[str, ...] = ()
    negated: bool = False
    relative: bool = False  # R
    anchored: bool = False  # A
    dollar_endonly: bool = False  # E


@dataclass(frozen=True, slots=True)
class ByteTest:
    nbytes: int
    operator: str  # < > = <= >= & ^ (negated with `negated`)
    value: int | str  # a number, or the name of a byte_extract variable
    offset: int | str
    buffer: str = PAYLOAD
    transforms: tuple[str, ...] = ()
    negated: bool = False
    relative: bool = False
    endian: str = "big"  # big | little | dce
    string: str | None = None  # hex | dec | oct when the bytes are a number written as text
    bitmask: int | None = None


@dataclass(frozen=True, slots=True)
class ByteJump:
    nbytes: int
    offset: int
    buffer: str = PAYLOAD
    transforms: tuple[str, ...] = ()
    relative: bool = False
    multiplier: int = 1
    endian: str = "big"
    string: str | None = None
    align: bool = False
    from_beginning: bool = False
    from_end: bool = False
    post_offset: int = 0
    bitmask: int | None = None


@dataclass(frozen=True, slots=True)
class IsDataAt:
    offset: int
    buffer: str = PAYLOAD
    transforms: tuple[str, ...] = ()
    negated: bool = False
    relative: bool = False
    rawbytes: bool = False


@dataclass(frozen=True, slots=True)
class BufferSize:
    """``bsize``: the size of the buffer in effect."""

    test: NumberTest
    buffer: str = PAYLOAD
    transforms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ByteExtract:
    """``byte_extract:<bytes>,<offset>,<name>[,relative][,multiplier N][,<endian>][,string[,<base>]][,align N]``:
    a number read from the buffer, named for the byte_test after it; the cursor moves past it."""

    nbytes: int
    offset: int
    name: str
    relative: bool = False
    multiplier: int = 1
    endian: str = "big"
    string: str | None = None
    align: int = 0
    buffer: str = PAYLOAD
    transforms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Base64Decode:
    """``base64_decode:[bytes N][, offset N][, relative]``: decodes from the buffer (after the
    previous match when relative) for the matches after ``base64_data``."""

    nbytes: int  # at most this many input bytes (Suricata: 0 means the rest of the buffer)
    offset: int
    relative: bool
    buffer: str = PAYLOAD
    transforms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DceIface:
    """``dce_iface:<uuid>[,<op><version>][,any_frag]``: the interface of the request's presentation
    context (and its major version), on the first fragment unless ``any_frag``."""

    uuid: str  # lowercase
    op: str | None = None  # < > = !
    version: int | None = None
    any_frag: bool = False
    buffer: str = "dce.iface"
    transforms: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DceOpnum:
    """``dce_opnum:<n>[,<a-b>]...``: the request's operation number."""

    ranges: tuple[tuple[int, int], ...]
    buffer: str = "dce.opnum"
    transforms: tuple[str, ...] = ()


Match = (Content | Pcre | ByteTest | ByteJump | IsDataAt | BufferSize | Base64Decode | DceIface | DceOpnum
         | ByteExtract)


@dataclass(frozen=True, slots=True)
class Flowbit:
    command: str  # set isset isnotset unset toggle noalert
    names: tuple[str, ...] = ()
    any_of: bool = False  # isset:a|b (True) versus set:a&b (False)


@dataclass(frozen=True, slots=True)
class Threshold:
    """``threshold`` (type limit|threshold|both) and ``detection_filter`` (type None)."""

    type: str | None
    track: str  # by_src | by_dst | by_rule | by_both | by_flow
    count: int
    seconds: int


@dataclass(frozen=True, slots=True)
class RateFilter:
    """A threshold.config ``rate_filter``: past ``count`` matches in ``seconds`` the rule's action
    is ``new_action`` for ``timeout`` seconds."""

    track: str  # by_src | by_dst | by_rule | by_both
    count: int
    seconds: int
    new_action: str  # alert | drop | pass | reject
    timeout: int


@dataclass(frozen=True, slots=True)
class Suppress:
    """A threshold.config ``suppress`` with an address: no alert when the tracked side is in ``ip``."""

    track: str  # by_src | by_dst | by_either
    ip: AddressSpec


@dataclass(frozen=True, slots=True)
class TcpFlags:
    flags: str  # letters of FSRPAUCE, or "0" for none
    modifier: str = ""  # "" exact (after mask) | "+" all of and any other | "*" any of | "!" none of
    ignore: str = ""  # the mask: flags not considered


@dataclass(frozen=True, slots=True)
class Reference:
    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class Rule:
    action: Action
    protocol: str  # ip tcp udp icmp tcp-pkt tcp-stream or an app protocol (http dns tls ...)
    src: AddressSpec
    src_ports: PortSpec
    direction: Direction
    dst: AddressSpec
    dst_ports: PortSpec
    sid: int
    gid: int = 1
    rev: int = 0
    msg: str = ""
    classtype: str | None = None
    category: str | None = None  # the classtype's description
    priority: int = 3  # `priority:` if given, else the classtype's, else 3
    app_protocol: str | None = None  # from the header or implied by the buffers used
    metadata: tuple[tuple[str, str], ...] = ()
    references: tuple[Reference, ...] = ()
    matches: tuple[Match, ...] = ()
    flow: frozenset[str] = frozenset()
    flowbits: tuple[Flowbit, ...] = ()
    xbits: tuple = ()  # statekeys.Xbit
    flowints: tuple = ()  # statekeys.Flowint
    stream_size: tuple = ()  # statekeys.StreamSize, all must hold
    tls_version: int | None = None
    dsize: NumberTest | None = None
    urilen: NumberTest | None = None
    urilen_raw: bool = False
    flags: TcpFlags | None = None
    ip_proto: NumberTest | None = None
    itype: NumberTest | None = None
    icode: NumberTest | None = None
    threshold: Threshold | None = None
    detection_filter: Threshold | None = None
    noalert: bool = False
    suppress: tuple[Suppress, ...] = ()  # from a threshold.config
    rate_filter: RateFilter | None = None  # from a threshold.config
    target: str | None = None  # src_ip | dest_ip
    options: tuple[tuple[str, str], ...] = ()
    path: str = ""
    line: int = 0
    text: str = ""

    @property
    def buffers(self) -> frozenset[str]:
        return frozenset(m.buffer for m in self.matches if m.buffer != BASE64_DATA)


@dataclass(frozen=True, slots=True)
class RuleError:
    """One rejected rule (or unreadable file): where, and why."""

    path: str
    line: int
    reason: str
    sid: int | None = None

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason}" if self.line else f"{self.path}: {self.reason}"


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    errors: tuple[RuleError, ...]

    @property
    def rejected(self) -> int:
        return sum(1 for e in self.errors if e.line)

    def raise_errors(self) -> None:
        """Raise RuleSetError listing every rejected rule and unreadable file, if there is any."""
        if self.errors:
            raise RuleSetError([str(e) for e in self.errors])


class RuleSetError(ProblemsError):
    """Rule files with rejected rules: every problem as ``path:line: reason`` (``errors``)."""


class RuleSyntaxError(ValueError):
    """Why one rule is rejected (the message is the reason printed after path:line)."""


class RulesPathError(WiretrailError):
    """A rules path given by the user does not exist or cannot be read."""
