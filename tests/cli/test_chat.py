"""`selfimprove chat`: a REPL over the operator that leaves cleanly on EOF or /quit."""

import pytest
import typer
from typer.testing import CliRunner

from selfimprove.cli.chat import chat
from selfimprove.testing.runs import start_scripted_run


@pytest.fixture(scope="module")
def app():
    app = typer.Typer()
    app.command()(chat)
    return app


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("chat") / "run"
    start_scripted_run(out, rounds=1).wait(120)
    return out


def test_slash_commands_until_eof(app, finished):
    result = CliRunner().invoke(app, ["--run", str(finished)], input="/status\n/rounds\n")
    assert result.exit_code == 0, result.output
    banner = result.output.splitlines()[0]
    assert str(finished) in banner and "finished" in banner and "/help" in banner
    assert "none (slash commands only)" in banner
    assert "rounds done 1/1" in result.output and "held-out pass@1" in result.output
    assert result.output.count("you> ") == 3


def test_no_input_exits_cleanly(app, finished):
    result = CliRunner().invoke(app, ["--run", str(finished)], input="")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output


def test_quit_stops_reading(app, finished):
    result = CliRunner().invoke(app, ["--run", str(finished)], input="/quit\n/status\n")
    assert result.exit_code == 0 and "rounds done" not in result.output


def test_free_text_without_a_model_says_how_to_configure_one(app, finished):
    result = CliRunner().invoke(app, ["--run", str(finished)], input="how is it going?\n/nope\n")
    assert result.exit_code == 0
    assert "console.operator.model" in result.output and "Unknown command" in result.output


def test_a_model_whose_key_is_missing_falls_back_to_slash_commands(app, finished, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "console:\n  operator:\n    model: openai/gpt-4o-mini\n"
        "    api_key_env: SELFIMPROVE_TEST_MISSING_KEY\n"
    )
    result = CliRunner().invoke(
        app, ["--run", str(finished), "--config", str(config)], input="/status\n"
    )
    assert result.exit_code == 0, result.output
    assert "SELFIMPROVE_TEST_MISSING_KEY" in result.output and "rounds done" in result.output


def test_a_bad_config_is_one_clear_error(app, finished, tmp_path):
    result = CliRunner().invoke(
        app, ["--run", str(finished), "--config", str(tmp_path / "missing.yaml")], input=""
    )
    assert result.exit_code == 2 and "does not exist" in result.output


def test_an_empty_folder_still_chats(app, tmp_path):
    result = CliRunner().invoke(app, ["--run", str(tmp_path / "none")], input="/status\n")
    assert result.exit_code == 0 and "not_started" in result.output and "No run in" in result.output
