"""The bad-input corpus: malformed configs, task files and solutions files, through the CLI.

Each case goes through the commands a user types (``run``, ``demo``, ``verify``) and must
end in one message (exit status 2, no traceback) that names the file, where in it (line,
field) and the bad value, and says what to do. The last tests check that a bad input
never touches a run folder's stored data, and that a huge line is not read whole.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import tracemalloc
from pathlib import Path
from types import EllipsisType
from typing import NamedTuple

import pytest
import yaml
from typer.testing import CliRunner

from selfimprove.cli.app import app
from selfimprove.runs import Run
from selfimprove.tasks import loaders
from selfimprove.testing.runs import start_scripted_run

MISSING, FOLDER = None, ...  # case contents that are not bytes: no file, a folder


class Case(NamedTuple):
    id: str
    content: str | bytes | EllipsisType | None
    where: tuple[str, ...]  # what the message must name: line, field, value
    hint: str  # what it must tell the user to do


CONFIGS = [
    Case(
        "unknown-key",
        "studnt:\n  batch_size: 4\n",
        ("studnt", "unknown key"),
        "did you mean 'student'?",
    ),
    Case(
        "unknown-nested-key",
        "loop:\n  self_debg: true\n",
        ("loop.self_debg", "True"),
        "did you mean 'self_debug'?",
    ),
    Case(
        "unknown-key-no-match",
        "store:\n  colour: red\n",
        ("store.colour", "'red'"),
        "use one of: backend, path,",
    ),
    Case("string-for-int", "loop:\n  rounds: three\n", ("loop.rounds = 'three'",), "valid integer"),
    Case(
        "list-for-section",
        "student: [a, b]\n",
        ("student = ['a', 'b']",),
        "indented under 'student:'",
    ),
    Case("empty-section", "loop:\ntasks:\n  seed: 1\n", ("loop = None",), "remove the section"),
    Case(
        "negative-rounds",
        "loop:\n  rounds: -1\n",
        ("loop.rounds = -1",),
        "greater than or equal to 0",
    ),
    Case(
        "negative-temperature",
        "student:\n  temperature: -0.5\n",
        ("student.temperature = -0.5",),
        "greater than or equal to 0",
    ),
    Case(
        "probability-over-1",
        "loop:\n  curate_min_confidence: 1.5\n",
        ("loop.curate_min_confidence = 1.5",),
        "less than or equal to 1",
    ),
    Case(
        "batch-size-0",
        "training:\n  batch_size: 0\n",
        ("training.batch_size = 0",),
        "greater than or equal to 1",
    ),
    Case(
        "every-problem-listed",
        "loop:\n  rounds: -1\n  samples_per_task: 0\n",
        ("loop.rounds = -1", "loop.samples_per_task = 0"),
        "greater than or equal to 1",
    ),
    Case("missing-file", MISSING, ("does not exist",), "check the path"),
    Case("folder", FOLDER, ("is a folder",), "give the path of a YAML file"),
    Case("empty-file", "", ("is empty",), "'{}' for all the defaults"),
    Case("only-comments", "# loop:\n#   rounds: 2\n", ("is empty",), "'{}' for all the defaults"),
    Case(
        "yaml-bad-indent",
        "loop:\n  rounds: 1\n student: x\n",
        ("line 3, column 2",),
        "check the indentation",
    ),
    Case(
        "yaml-unclosed-bracket",
        "loop:\n  rounds: [1\n",
        ("flow sequence at line 2",),
        "brackets and quotes are closed",
    ),
    Case("yaml-tab", "loop:\n\trounds: 1\n", ("line 2", "'\\t'"), "spaces, not tabs"),
    Case(
        "duplicate-section",
        "loop:\n  rounds: 1\nloop:\n  seed: 2\n",
        ("'loop' twice, on lines 1 and 3",),
        "keep one",
    ),
    Case("top-level-list", "- loop\n- tasks\n", ("got list",), "write 'section:' lines"),
    Case("top-level-scalar", "rounds=2\n", ("got str",), "write 'section:' lines"),
    Case(
        "binary",
        b"\x1f\x8b\x08\x00\x00\x00\x00",
        ("binary data (a NUL byte on line 1)",),
        "is it the right file?",
    ),
    Case("utf-16", "loop:\n  rounds: 1\n".encode("utf-16"), ("UTF-16",), "re-save it as UTF-8"),
    Case(
        "latin-1",
        "student:\n  system_prompt: café\n".encode("latin-1"),
        ("byte 0xe9 on line 2",),
        "re-save it as UTF-8",
    ),
    Case("control-character", b"loop:\n  rounds: 1\x07\n", ("'\\x07' on line 2",), "remove it"),
    Case("huge", b"a: " + b"x" * (1 << 20), ("over 1 MiB",), "is it the right file?"),
]

TASK_FILES = [
    Case(
        "broken-json-line",
        '{"id": "a", "prompt": "x"}\n{"id": "b", "prompt": \n',
        (":2:", "invalid JSON"),
        "one JSON object",
    ),
    Case("json-not-object", "[1, 2]\n", (":1:", "got list"), "one JSON object"),
    Case(
        "missing-field",
        '{"id": "a"}\n',
        (":1:", "keys ['id']"),
        "expected selfimprove (id, prompt)",
    ),
    Case(
        "wrong-field-type",
        '{"id": "a", "prompt": "x", "difficulty": "hard"}\n',
        (":1:", "difficulty = 'hard'"),
        "valid integer",
    ),
    Case(
        "huge-line",
        b'{"id": "a", "prompt": "' + b"x" * loaders.MAX_LINE_BYTES + b'"}\n',
        (":1:", "longer than 4 MiB"),
        "one task per line",
    ),
    Case("binary", b"\x1f\x8b\x08\x00\x00\x00\x00", (":1:", "NUL byte at column 4"), "UTF-8"),
    Case(
        "utf-16",
        '{"id": "a", "prompt": "x"}\n'.encode("utf-16"),
        (":1:", "UTF-16"),
        "re-save it as UTF-8",
    ),
    Case(
        "latin-1",
        '{"id": "a", "prompt": "café"}\n'.encode("latin-1"),
        (":1:", "not UTF-8"),
        "re-save it as UTF-8",
    ),
    Case("empty-file", "", ("no tasks in file",), "one JSON object"),
    Case(
        "duplicate-ids",
        '{"id": "a", "prompt": "x"}\n{"id": "a", "prompt": "y"}\n',
        (":2:", "'a'", "first on line 1"),
        "rename or remove one",
    ),
    Case(
        "line-numbers-count-blank-lines",
        '{"id": "a", "prompt": "x"}\n\n  \n{"id": "b", "prompt": 3}\n',
        (":4:", "prompt = 3"),
        "valid string",
    ),
    Case("missing-file", MISSING, ("does not exist",), "check the path"),
    Case("folder", FOLDER, ("is a folder",), "give the path of a JSONL file"),
]

SOLUTIONS = [
    Case(
        "broken-json-line",
        '{"task_id": "a", "completion": "1"}\n{task_id}\n',
        (":2:", "invalid JSON"),
        "one JSON object",
    ),
    Case(
        "missing-field",
        '{"task_id": "a"}\n',
        (":1:", "['completion']"),
        '{"task_id": ..., "completion": "..."}',
    ),
    Case(
        "completion-not-string",
        '{"task_id": "a", "completion": 1}\n',
        (":1:", "got int 1"),
        "in quotes",
    ),
    Case("empty-file", "\n", ("no solutions in file",), '{"task_id": ..., "completion": "..."}'),
]

GOOD_TASKS = '{"id": "a", "prompt": "1 + 0 = ?", "answer": "1"}\n'
GOOD_SOLUTIONS = '{"task_id": "a", "completion": "1"}\n'


@pytest.fixture(autouse=True)
def _never_run_a_model(monkeypatch, tmp_path):
    """A case that slipped through would start a real run: fail it at the model instead,
    in a scratch folder."""

    def reached(*args, **kwargs):
        raise AssertionError("a bad input reached the model")

    monkeypatch.setattr("selfimprove.loop.drive_deps", reached)
    monkeypatch.setattr("selfimprove.models.student.resolve_model_path", reached)
    monkeypatch.setattr("selfimprove.api.load_model", reached)
    monkeypatch.chdir(tmp_path)


def _write(path: Path, content: str | bytes | EllipsisType | None) -> Path:
    if content is FOLDER:
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    return path


def _fails(args: list[str]) -> str:
    """The command's output, after checking it is a user error: status 2, no traceback."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return " ".join(result.output.split())  # undo any wrapping


def _config(path: Path, **sections: dict) -> Path:
    """A valid config (but for the files it names), its run folder beside it."""
    sections.setdefault("loop", {"out_dir": str(path.parent / "run")})
    return _write(path, yaml.safe_dump({"store": {"embedding": "hash"}, **sections}))


@pytest.mark.parametrize("command", ["run", "demo"])
@pytest.mark.parametrize("case", CONFIGS, ids=[c.id for c in CONFIGS])
def test_bad_config(tmp_path, case, command):
    path = _write(tmp_path / "bad.yaml", case.content)
    if command == "run":
        args = ["run", path]
    else:
        args = ["demo", "--config", path, "--out", tmp_path / "demo", "--rounds", 1]
    message = _fails(args)
    for part in (str(path), *case.where, case.hint):
        assert part in message


@pytest.mark.parametrize("command", ["verify", "run"])
@pytest.mark.parametrize("case", TASK_FILES, ids=[c.id for c in TASK_FILES])
def test_bad_task_file(tmp_path, case, command):
    """``verify TASKS`` and a run whose config names the file in tasks.files."""
    path = _write(tmp_path / "tasks.jsonl", case.content)
    if command == "verify":
        solutions = _write(tmp_path / "solutions.jsonl", GOOD_SOLUTIONS)
        message = _fails(["verify", path, "--solutions", solutions])
    else:
        config = _config(tmp_path / "run.yaml", tasks={"suites": [], "files": [str(path)]})
        message = _fails(["run", config])
        assert "(named in the config's tasks.files)" in message
    for part in (str(path), *case.where, case.hint):
        assert part in message


@pytest.mark.parametrize("case", SOLUTIONS, ids=[c.id for c in SOLUTIONS])
def test_bad_solutions_file(tmp_path, case):
    tasks = _write(tmp_path / "tasks.jsonl", GOOD_TASKS)
    path = _write(tmp_path / "solutions.jsonl", case.content)
    message = _fails(["verify", tasks, "--solutions", path])
    for part in (str(path), *case.where, case.hint):
        assert part in message


def test_a_missing_file_named_by_relative_path_shows_where_it_was_looked_for(tmp_path):
    config = _write(tmp_path / "run.yaml", "tasks:\n  suites: []\n  guard_files: [nope.jsonl]\n")
    message = _fails(["run", config])
    assert "nope.jsonl: file does not exist" in message
    assert f"relative to {str(tmp_path)!r}" in message and "tasks.guard_files" in message
    assert f"relative to {str(tmp_path)!r}" in _fails(["run", "none.yaml"])


@pytest.mark.parametrize(
    "args",
    [
        ["run", "CONFIG_NAMING_AFILE"],
        ["run", "OK_CONFIG", "--out", "afile"],
        ["demo", "--out", "afile", "--rounds", 1],
        ["demo", "--out", "afile/run", "--rounds", 0],
    ],
    ids=["run-config-out_dir", "run-out", "demo-out", "demo-out-under-a-file"],
)
def test_run_folder_that_is_a_file(tmp_path, args):
    (tmp_path / "afile").write_text("my notes\n")
    names = {
        "CONFIG_NAMING_AFILE": _config(tmp_path / "a.yaml", loop={"out_dir": "afile"}),
        "OK_CONFIG": _config(tmp_path / "ok.yaml"),
    }
    message = _fails([names.get(a, a) for a in args])
    assert "'afile' is a file, not a folder" in message and "pick another --out" in message
    assert (tmp_path / "afile").read_text() == "my notes\n"


def test_utf8_bom_and_blank_lines_are_fine(tmp_path):
    tasks = codecs.BOM_UTF8 + (GOOD_TASKS + "\n   \n" + GOOD_TASKS.replace('"a"', '"b"')).encode()
    solutions = GOOD_SOLUTIONS + '\n{"task_id": "b", "completion": "1"}\n'
    result = CliRunner().invoke(
        app,
        [
            "verify",
            str(_write(tmp_path / "tasks.jsonl", tasks)),
            "--solutions",
            str(_write(tmp_path / "solutions.jsonl", codecs.BOM_UTF8 + solutions.encode())),
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.splitlines()[-1])["summary"]["passed"] == 2


def test_a_huge_line_is_not_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(loaders, "MAX_LINE_BYTES", 1024)
    path = _write(tmp_path / "tasks.jsonl", b'{"id": "a", "prompt": "' + b"x" * (16 << 20))
    tracemalloc.start()
    try:
        message = _fails(["verify", path, "--solutions", tmp_path / "none.jsonl"])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert f"{path}:1: line is longer than" in message
    assert peak < 4 << 20  # the 16 MiB line was never in memory


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file of a run folder and its content hash (run.lock holds only a pid)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != "run.lock"
    }


def test_a_bad_input_never_touches_a_run_folder(tmp_path):
    out = tmp_path / "run"
    start_scripted_run(out, rounds=1).wait(60)
    stored = Run(out).store.count()
    before = _snapshot(out)
    assert stored > 0 and {"report.json", "config.json"} <= before.keys()
    bad_config = _write(tmp_path / "bad.yaml", "loop:\n  rounds: 3\n  self_debg: false\n")
    _write(tmp_path / "broken.jsonl", '{"id": "a", "prompt": \n')
    bad_tasks = _config(tmp_path / "tasks.yaml", tasks={"suites": [], "files": ["broken.jsonl"]})
    for args in (
        ["run", bad_config, "--resume", "--out", out],
        ["run", bad_tasks, "--resume", "--out", out],
        ["demo", "--config", bad_tasks, "--resume", "--out", out, "--rounds", 3],
        ["demo", "--config", bad_tasks, "--out", out, "--rounds", 0],
    ):
        _fails(args)
        assert _snapshot(out) == before, args
    assert Run(out).store.count() == stored
    assert [r.round for r in Run(out).rounds()] == [0, 1]
