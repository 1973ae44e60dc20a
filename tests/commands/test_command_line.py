"""Every command-line module of the package (a ``main`` run under ``if __name__ == "__main__"``)
has the same ``--help``: the ``python -m`` command as program name, a one-paragraph description,
help text for every argument and the default of every option that has one; an unknown option
exits 2."""
from __future__ import annotations

import argparse
import importlib
import re
from typing import List

import pytest

from repo_paths import ROOT

PACKAGE = ROOT / "pytorch_kaldi_snn"


def _command_modules() -> List[str]:
    return sorted(".".join(path.relative_to(ROOT).with_suffix("").parts)
                  for path in PACKAGE.rglob("*.py")
                  if re.search(r'^if __name__ == "__main__":', path.read_text(), flags=re.M))


def _parsers(module: str, argv: List[str], monkeypatch: pytest.MonkeyPatch) -> tuple:
    """``main(argv)``'s exit code and every parser it parsed with."""
    seen: List[argparse.ArgumentParser] = []
    parse = argparse.ArgumentParser.parse_known_args

    def recording(self, *args, **kwargs):
        seen.append(self)
        return parse(self, *args, **kwargs)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", recording)
    with pytest.raises(SystemExit) as stop:
        importlib.import_module(module).main(argv)
    return stop.value.code, seen


def test_the_command_modules_are_found() -> None:
    found = _command_modules()
    assert {"pytorch_kaldi_snn.sweep", "pytorch_kaldi_snn.report.paper_ops",
            "pytorch_kaldi_snn.config.localize", "pytorch_kaldi_snn.run_exp"} <= set(found)
    assert len(found) >= 20


def _check_actions(parser: argparse.ArgumentParser, module: str) -> None:
    formatter = parser._get_formatter()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _check_actions(sub, module)
            continue
        name = action.option_strings[-1] if action.option_strings else action.dest
        assert action.help, f"{module}: {name} has no help"
        shown = formatter._expand_help(action)
        has_default = not (action.default is None or action.default is argparse.SUPPRESS
                           or action.nargs == 0 or action.default == [])
        if action.option_strings and has_default:
            assert "default" in shown, f"{module}: {name}: {shown!r} does not give its default"


@pytest.mark.parametrize("module", _command_modules())
def test_help_names_the_command_and_documents_every_option(
        module: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    code, parsers = _parsers(module, ["--help"], monkeypatch)
    out = capsys.readouterr().out
    assert code == 0
    parser = parsers[0]
    assert parser.prog == f"python -m {module}"
    assert re.match(rf"usage: python -m {re.escape(module)}\s", out)
    assert parser.description and "::" not in parser.description
    assert "\n" not in parser.description
    _check_actions(parser, module)


@pytest.mark.parametrize("module", _command_modules())
def test_an_unknown_option_exits_2(module: str, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture) -> None:
    code, _ = _parsers(module, ["--no-such-option"], monkeypatch)
    err = capsys.readouterr().err
    assert code == 2
    assert re.match(rf"usage: python -m {re.escape(module)}\s", err)
    assert f"python -m {module}: error: " in err
