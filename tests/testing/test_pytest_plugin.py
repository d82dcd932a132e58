"""The pytest plugin's emulator factory: each call starts its own emulator with the options given."""

from __future__ import annotations


def test_the_factory_starts_one_emulator_per_call_with_its_options(oms_emulator_factory):
    slow = oms_emulator_factory(object_delay=0.25, project_id="f" * 32)
    plain = oms_emulator_factory()

    assert slow.port != plain.port and slow.data_dir != plain.data_dir
    assert slow.project_id == "f" * 32 and plain.project_id != slow.project_id
    assert slow.url.startswith("http://127.0.0.1:")
