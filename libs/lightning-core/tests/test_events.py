import pytest
from pydantic import ValidationError

from lightning_core.events import CloudEvent


def test_json_round_trip_keeps_every_attribute() -> None:
    event = CloudEvent(
        source="api",
        type="order.created",
        subject="order/7",
        data={"total": 12.5, "items": ["a"]},
        user="alice",
        correlationid="c-1",
        traceparent="00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    )
    assert CloudEvent.from_json(event.to_json()) == event


def test_encoding_is_structured_cloudevents_without_nulls() -> None:
    raw = CloudEvent(source="api", type="ping", user="alice").to_json()
    decoded = CloudEvent.model_validate_json(raw).model_dump(exclude_none=True)
    assert decoded.keys() == {
        "id",
        "source",
        "type",
        "specversion",
        "time",
        "datacontenttype",
        "data",
        "user",
        "hops",
    }
    assert b'"specversion":"1.0"' in raw
    assert b"subject" not in raw


@pytest.mark.parametrize(
    "raw",
    [
        '{"source": "api", "type": "x"}',  # no owner
        '{"source": "api", "type": "x", "user": "u", "specversion": "0.3"}',
        '{"source": "api", "type": "x", "user": "u", "unknown": 1}',
        '{"source": "", "type": "x", "user": "u"}',
    ],
)
def test_malformed_events_are_rejected(raw: str) -> None:
    with pytest.raises(ValidationError):
        CloudEvent.from_json(raw)
