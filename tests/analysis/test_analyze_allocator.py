"""analyze sets polars' allocator from the input's size, before polars loads."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sensor_plugins.analysis.command import IN_MEMORY_MAX_BYTES, tune_allocator

VAR = "_RJEM_MALLOC_CONF"


@pytest.fixture
def no_setting(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(VAR, raising=False)
    return monkeypatch


def test_a_small_input_keeps_the_allocators_default(no_setting: pytest.MonkeyPatch) -> None:
    tune_allocator(IN_MEMORY_MAX_BYTES)
    assert VAR not in os.environ


def test_a_large_input_gives_freed_pages_back_at_once(no_setting: pytest.MonkeyPatch) -> None:
    tune_allocator(IN_MEMORY_MAX_BYTES + 1)
    assert os.environ[VAR] == "dirty_decay_ms:0,muzzy_decay_ms:0"


def test_follow_mode_gives_freed_pages_back_at_once(no_setting: pytest.MonkeyPatch) -> None:
    tune_allocator(None)
    assert os.environ[VAR] == "dirty_decay_ms:0,muzzy_decay_ms:0"


def test_a_users_own_allocator_setting_wins(no_setting: pytest.MonkeyPatch) -> None:
    no_setting.setenv(VAR, "dirty_decay_ms:5000")
    tune_allocator(IN_MEMORY_MAX_BYTES + 1)
    assert os.environ[VAR] == "dirty_decay_ms:5000"


def test_the_analyze_command_module_does_not_load_polars() -> None:
    code = "import sys, sensor_plugins.analysis.command; print('polars' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
