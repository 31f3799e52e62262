"""``@message``: a frozen dataclass with a faster constructor must behave as the dataclass would."""

from __future__ import annotations

import dataclasses

import pytest

from simulator.engine.node import message


@message
class Vote:
    term: int
    voter: str
    granted: bool = False
    note: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PlainVote:
    term: int
    voter: str
    granted: bool = False
    note: str | None = None


def test_fields_positional_keyword_and_defaults():
    v = Vote(3, "n1")
    assert (v.term, v.voter, v.granted, v.note) == (3, "n1", False, None)
    w = Vote(term=4, voter="n2", granted=True, note="x")
    assert (w.term, w.voter, w.granted, w.note) == (4, "n2", True, "x")
    assert Vote(5, "n3", True) == Vote(term=5, voter="n3", granted=True)


def test_behaves_as_the_frozen_dataclass():
    v, p = Vote(3, "n1", True), PlainVote(3, "n1", True)
    assert repr(v) == repr(p).replace("PlainVote", "Vote")
    assert hash(v) == hash(Vote(3, "n1", True))
    assert v != Vote(3, "n1", False)
    assert dataclasses.replace(v, term=9) == Vote(9, "n1", True)
    assert [f.name for f in dataclasses.fields(v)] == ["term", "voter", "granted", "note"]
    assert not hasattr(v, "__dict__")  # slotted
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.term = 4  # type: ignore[misc]


def test_constructor_errors_match_a_function_signature():
    with pytest.raises(TypeError):
        Vote(1)  # voter missing
    with pytest.raises(TypeError):
        Vote(1, "n1", nosuch=2)  # type: ignore[call-arg]


def test_unsupported_declarations_are_refused():
    with pytest.raises(TypeError, match="default_factory"):
        @message
        class Bad:
            items: list = dataclasses.field(default_factory=list)

    with pytest.raises(TypeError, match="__post_init__"):
        @message
        class Bad2:
            x: int

            def __post_init__(self):
                pass


def test_empty_message():
    @message
    class Ping:
        pass

    assert Ping() == Ping()
