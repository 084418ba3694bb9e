"""The console script turns user errors into one line: exit 1 for data, 2 for usage."""

from __future__ import annotations

import sys

import pytest

from acga_lightning import cli
from acga_lightning.errors import ConfigError, DataError
from acga_lightning.registry import UnknownPartError


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("model.attention: unknown attention 'x'"), 2),
        (UnknownPartError("unknown attention 'x'", "attention"), 2),
        (FileNotFoundError("config file not found: c.yaml"), 2),
        (DataError("Release/videoset.csv:3: bad row"), 1),
    ],
)
def test_user_errors_end_in_one_line_with_their_exit_code(monkeypatch, capsys, error, code):
    def fail(argv, started):
        raise error

    monkeypatch.setattr(cli, "run", fail)
    monkeypatch.setattr(sys, "argv", ["acga", "fit", "--config", "c.yaml"])
    monkeypatch.delenv("ACGA_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("acga fit: error: ") and str(error) in err
    monkeypatch.setenv("ACGA_DEBUG", "1")  # the traceback, for a bug report
    with pytest.raises(type(error)):
        cli.main()


def test_other_errors_keep_their_traceback(monkeypatch) -> None:
    def fail(argv, started):
        raise ZeroDivisionError("a bug, not a user error")

    monkeypatch.setattr(cli, "run", fail)
    monkeypatch.setattr(sys, "argv", ["acga", "fit"])
    with pytest.raises(ZeroDivisionError):
        cli.main()
