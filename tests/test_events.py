"""The event stream: appends from threads, reads from a sequence number, skips cut lines."""

import threading

import pytest

from selfimprove.events import EventLog, Throttle, emit
from selfimprove.progress import progress_bar


def test_events_are_numbered_in_order_and_read_after_a_sequence_number(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    log.emit("run_started", rounds=2)
    log.emit("round_started", round=1)
    log.emit("progress", step="generating", done=3, total=9)  # keeps round 1
    events = log.read()
    assert [(e.seq, e.kind, e.round) for e in events] == [
        (1, "run_started", None),
        (2, "round_started", 1),
        (3, "progress", 1),
    ]
    assert events[2].data == {"step": "generating", "done": 3, "total": 9}
    assert [e.seq for e in log.read(after=2)] == [3]
    assert [e.kind for e in log.read(kinds={"progress"})] == ["progress"]
    # a new writer (another process, a resumed run) continues the numbering and the round
    assert EventLog(log.path).emit("gate").seq == 4
    assert log.read()[-1].round == 1


def test_unknown_kinds_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown event kind 'rond_started'"):
        EventLog(tmp_path / "e.jsonl").emit("rond_started")


def test_concurrent_writers_never_interleave_lines(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")

    def write(i):
        for j in range(50):
            log.emit("progress", step=f"w{i}", done=j, total=50, pad="x" * 500)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = log.read()
    assert [e.seq for e in events] == list(range(1, 201))


def test_a_line_cut_by_a_crash_is_skipped(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    log.emit("run_started")
    with log.path.open("a") as f:
        f.write('{"seq": 2, "time": 1.0, "ki')  # the process died mid-write
    assert [e.seq for e in log.read()] == [1]


def test_capture_receives_module_level_emits_and_progress_bars(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    emit("gate", round=9)  # nobody capturing: dropped
    with log.capture():
        emit("batch_verified", round=2, passed=3, total=8)
        with progress_bar("verifying", 4, enabled=False) as advance:
            for _ in range(4):
                advance(1)
    events = log.read()
    assert events[0].kind == "batch_verified" and events[0].round == 2
    assert events[0].data == {"passed": 3, "total": 8}
    progress = [e.data for e in events if e.kind == "progress"]
    # throttled to one a second, but the last one (4/4) always comes through
    assert progress[0] == {"step": "verifying", "done": 1, "total": 4}
    assert progress[-1] == {"step": "verifying", "done": 4, "total": 4}
    assert len(progress) <= 2


def test_throttle_lets_the_final_event_through():
    throttle = Throttle(every_s=60)
    assert throttle() and not throttle() and throttle(final=True)


def test_two_runs_in_one_process_keep_separate_streams(tmp_path):
    logs = [EventLog(tmp_path / f"{i}.jsonl") for i in range(2)]
    barrier = threading.Barrier(2)

    def run(i):
        with logs[i].capture():
            barrier.wait()  # both capture at the same time
            for _ in range(20):
                emit("progress", step=f"run {i}", done=1, total=1)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, log in enumerate(logs):
        assert {e.data["step"] for e in log.read()} == {f"run {i}"}
        assert len(log.read()) == 20
