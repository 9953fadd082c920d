"""The test-mode flag and the device label."""

import pytest

from lessons import runtime


@pytest.mark.parametrize("value, expected", [("", False), ("0", False), ("false", False), ("1", True), ("yes", True)])
def test_test_mode_reads_the_environment(monkeypatch, value, expected):
    monkeypatch.setenv(runtime.TEST_MODE_ENV, value)
    assert runtime.test_mode() is expected


def test_progress_is_silent_in_test_mode(monkeypatch, capsys):
    monkeypatch.setenv(runtime.TEST_MODE_ENV, "1")
    assert list(runtime.progress(range(3), total=3, desc="x")) == [0, 1, 2]
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_device_label_names_the_platform():
    assert runtime.device_label().split()[0] in {"CPU", "GPU", "TPU"}
