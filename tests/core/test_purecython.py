"""A typed module's state keeps fixed attributes compiled and as Python (slots, no __dict__)."""

from __future__ import annotations

import pytest

from recorder.core import purecython
from recorder.core.apps.streams import Stream


def test_slotted_turns_declarations_into_slots():
    @purecython.cclass
    class Point:
        x = purecython.declare(purecython.longlong)
        label = purecython.declare(object)

        def __init__(self, x: int) -> None:
            self.x = x
            self.label = "p"

        def double(self) -> int:
            return 2 * self.x

    P = purecython.slotted(Point)
    assert P.__slots__ == ("x", "label")
    p = P(21)
    assert p.double() == 42 and p.label == "p"
    assert not hasattr(p, "__dict__")
    with pytest.raises(AttributeError):
        p.other = 1


def test_stream_has_no_instance_dict():
    s = Stream(lambda d: None, lambda n: None)
    with pytest.raises(AttributeError):
        s.other = 1
