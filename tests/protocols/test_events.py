from __future__ import annotations

import dataclasses
import pickle

import pytest

from hypercorn.events import Closed, Event, RawData, Updated


@pytest.mark.parametrize(
    "event",
    [RawData(b"GET / HTTP/1.1\r\n"), RawData(b"x", ("127.0.0.1", 4433)), Closed(), Updated(True)],
)
def test_events_are_frozen_values(event: Event) -> None:
    assert isinstance(event, Event)
    assert pickle.loads(pickle.dumps(event)) == event
    field = next(iter(dataclasses.fields(event)), None)  # type: ignore[arg-type]
    if field is not None:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(event, field.name, None)


def test_raw_data_address_defaults_to_none() -> None:
    assert RawData(b"abc").address is None
    assert RawData(b"abc") == RawData(data=b"abc", address=None)
    assert RawData(b"abc") != RawData(b"abc", ("::1", 443))


def test_updated_carries_idleness() -> None:
    assert Updated(idle=True) != Updated(idle=False)
    assert Closed() == Closed()
