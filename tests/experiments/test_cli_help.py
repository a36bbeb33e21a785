"""The command line speaks in flags: every option documented, defaults shown, errors in flags."""

from __future__ import annotations

import argparse

import pytest

from covercast.experiments import cli


def _options(parser: argparse.ArgumentParser, path: tuple[str, ...] = ("covercast",)):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, (*path, name))
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield " ".join(path), action


def test_every_option_has_help_and_says_what_none_means():
    missing, silent = [], []
    for command, action in _options(cli.build_parser()):
        name = "/".join(action.option_strings) or action.dest
        if not action.help:
            missing.append(f"{command} {name}")
        elif (action.option_strings and action.default is None and not action.required
              and action.nargs != 0 and not any(w in action.help.lower()
                                                for w in ("default", "also"))):
            # a None default is "not given": the help must say what happens then
            silent.append(f"{command} {name}: {action.help!r}")
    assert not missing, "options without help text:\n" + "\n".join(missing)
    assert not silent, "options whose default (None) the help does not explain:\n" + \
        "\n".join(silent)


def test_help_shows_defaults_once(capsys):
    with pytest.raises(SystemExit):
        cli.main(["simulate-log", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "simulated users (default: 1000)" in text
    assert "style index of the static policy (default: 0)" in text
    # help that already states its default is not repeated; None defaults are not printed
    assert text.count("default: random") == 1
    assert "(default: None)" not in text


@pytest.mark.parametrize(("argv", "flag"), [
    (["simulate-log", "--users", "0", "--out", "log.csv"], "`--users`"),
    (["simulate-log", "--policy", "static", "--hours", "25", "--out", "log.csv"],
     "`--hours` (each value)"),
    (["train", "--steps", "-5", "--out", "run"], "`--steps`"),
    (["bench", "population", "--n", "0"], "`--n`"),
    (["evaluate", "--agent", "random", "--horizon-days", "0", "--out", "ev"],
     "`--horizon-days`"),
])
def test_errors_name_the_flag_not_the_python_parameter(argv, flag, capsys, tmp_path,
                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert flag in err, err
    for python_name in ("n_users", "total_steps", "`ns`", "horizon_days", "hours[*]"):
        assert python_name not in err, err


def test_cli_message_leaves_names_without_a_flag_alone():
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", dest="users")
    msg = cli.cli_message("`n_users` must be positive; `bank` must match `params`.", parser)
    assert msg == "`--users` must be positive; `bank` must match `params`."
