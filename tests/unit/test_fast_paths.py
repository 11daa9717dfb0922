"""`CRM_FAST_PATHS` (shared/fastpaths.py): what it turns on, and the library paths of the fast
paths that need no broker (the events' quick check, gc.freeze)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from marshmallow import Schema, fields
from sqlalchemy import MetaData

from shared import fastpaths, heap
from shared.context import Context
from shared.errors import ValidationFailed
from shared.outbox import EventRecorder, outbox_table

EVERY = frozenset(fastpaths.FAST_PATHS)


@pytest.mark.parametrize(("setting", "expected"), [
    ("", EVERY),
    ("all", EVERY),
    ("none", frozenset()),
    ("rpc_client, heap_freeze", {"rpc_client", "heap_freeze"}),
    ("all,-relay_frames,-rpc_replies", EVERY - {"relay_frames", "rpc_replies"}),
    ("none,heap_freeze", {"heap_freeze"}),
])
def test_the_setting_names_the_fast_paths_on(setting: str, expected: set[str]) -> None:
    assert fastpaths.active(setting) == expected


def test_an_unknown_name_is_refused_not_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="rpc_clinet"):
        fastpaths.active("all,-rpc_clinet")
    monkeypatch.setenv(fastpaths.SETTING, "none")
    assert not fastpaths.enabled("heap_freeze")
    with pytest.raises(KeyError):
        fastpaths.enabled("warp_drive")


def test_every_fast_path_names_its_library_path() -> None:
    for path in fastpaths.FAST_PATHS.values():
        assert path.where and path.fast and path.library, path.name


# --------------------------------------------------------------------------- the quick check


class Noted(Schema):
    n = fields.Integer(required=True)


@pytest.fixture(params=["all", "none"], ids=["quick_check", "marshmallow_only"])
def setting(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(fastpaths.SETTING, request.param)
    return request.param


class RecordingSession:
    """Enough of a Session for `EventRecorder.record` with `defer=True`."""

    def __init__(self) -> None:
        self.info: dict = {}


def test_events_are_validated_both_ways(setting: str, monkeypatch: pytest.MonkeyPatch) -> None:
    validations: list[dict] = []
    validate = Noted.validate

    def counted(self, data, **kwargs):
        validations.append(data)
        return validate(self, data, **kwargs)

    monkeypatch.setattr(Noted, "validate", counted)
    monkeypatch.setattr("shared.outbox.defer_insert", lambda session, table, row: None)
    recorder = EventRecorder("probe", outbox_table(MetaData()), {"thing_noted": Noted},
                             Context(correlation_id="c-1"))
    envelope = recorder.record(RecordingSession(), "thing_noted", {"n": 1}, defer=True)
    assert envelope["data"] == {"n": 1}
    # The quick check says yes without marshmallow; without it marshmallow validates.
    assert validations == ([] if setting == "all" else [{"n": 1}])
    with pytest.raises(ValidationFailed) as refused:
        recorder.record(RecordingSession(), "thing_noted", {"n": "one"}, defer=True)
    assert "n" in refused.value.errors  # marshmallow names the problem both ways


# --------------------------------------------------------------------------- gc.freeze


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_the_heap_is_frozen_only_with_the_fast_path_on(unfrozen, monkeypatch) -> None:
    monkeypatch.setenv(fastpaths.SETTING, "all,-heap_freeze")
    assert heap.freeze_startup_heap() == 0
    assert gc.get_freeze_count() == 0
    monkeypatch.setenv(fastpaths.SETTING, "heap_freeze")
    assert heap.freeze_startup_heap() > 0
    assert gc.get_freeze_count() > 0
