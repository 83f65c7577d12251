"""Side channels for workers that share nothing with the launcher: progress as event files on
OUT's filesystem, and a cancel that also reaches the runner."""

import threading
import time

from beam_pipeline.run.progress import (
    CHUNKED,
    EMBEDDED,
    EventFileChannel,
    ProgressTracker,
    RunLink,
)
from beam_pipeline.runtime import event_files
from beam_pipeline.runtime.cancel import Cancelled, CancelToken


def test_events_written_by_workers_reach_the_tracker_once(tmp_path, monkeypatch):
    monkeypatch.setattr(event_files, "WRITE_EVERY_S", 0.05)
    folder = str(tmp_path / "_events")
    link = RunLink(None, events_dir=folder)
    tracker = ProgressTracker(total_files=2)
    with EventFileChannel(tracker, folder, interval=0.05) as channel:
        link.send({"k": CHUNKED, "p": "a.py", "n": 2, "b": 10})
        link.send({"k": EMBEDDED, "p": {"a.py": 2}})
        deadline = time.monotonic() + 10
        while tracker.files_done == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert tracker.files_done == 1  # arrived while the run goes on, not at the end
        # A retried bundle sends the same file's events again: it is still one file.
        link.send({"k": CHUNKED, "p": "a.py", "n": 2, "b": 10})
        link.send({"k": EMBEDDED, "p": {"a.py": 2}})
        link.send({"k": CHUNKED, "p": "b.py", "n": 0, "b": 5})
        link.close()  # a DoFn's teardown: the last events are written before it returns
    assert tracker.files_done == 2 and tracker.bytes_done == 15
    assert channel.events == 5
    assert list((tmp_path / "_events").iterdir()) == []  # read objects are deleted


def test_a_broken_or_unreachable_event_store_never_fails_the_run(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("a file where the folder should be")
    link = RunLink(None, events_dir=str(blocked / "_events"))
    link.send({"k": CHUNKED, "p": "a.py", "n": 0, "b": 1})
    link.close()  # the write fails quietly
    folder = tmp_path / "_events"
    folder.mkdir()
    (folder / "x-00000001.json").write_text("{not json")
    (folder / "y-00000001.json").write_text('[{"k": "c", "p": "b.py", "n": 0, "b": 3}, 7]')
    tracker = ProgressTracker(total_files=1)
    channel = EventFileChannel(tracker, str(folder))
    channel.poll()
    assert tracker.files_done == 1


def test_without_events_the_display_says_per_file_progress_is_unavailable():
    now = [0.0]
    tracker = ProgressTracker(total_files=40, clock=lambda: now[0])
    tracker.set_stage("running")
    now[0] = 3.0
    assert "unavailable" not in tracker.summary_line()
    now[0] = 12.0
    line = tracker.summary_line()
    assert line.startswith("[starting Beam] 12s | per-file progress unavailable")
    tracker.handle({"k": CHUNKED, "p": "a.py", "n": 0, "b": 1})
    assert "unavailable" not in tracker.summary_line()


def test_a_cancel_also_calls_the_runners_own_cancel():
    token, calls = CancelToken(), []
    with token.also_calls(lambda: calls.append("runner")):
        token.cancel(wait=True)
        token.cancel(wait=True)  # idempotent: the runner is asked once
    assert calls == ["runner"]
    with token.also_calls(lambda: calls.append("late")):  # already cancelled: at once
        pass
    assert calls == ["runner", "late"]
    token.cancel(wait=True)
    assert calls == ["runner", "late"]  # a hook is gone once its block ends


def test_a_runner_that_cannot_cancel_is_not_an_error(tmp_path):
    token = CancelToken()
    token.bind(str(tmp_path / "_cancel"))

    def cannot():
        raise NotImplementedError

    with token.also_calls(cannot):
        token.cancel(wait=True)
    check = token.check()
    try:
        check()
    except Cancelled:
        pass
    else:
        raise AssertionError("the flag file did not stop the worker's check")
    assert (tmp_path / "_cancel").read_bytes() == b"cancel\n"


def test_a_cancel_after_the_run_ended_writes_no_flag(tmp_path):
    """The face calls back (and may cancel) until its run thread returns: a flag written after
    the staging folder was discarded would bring the folder back."""
    staging = tmp_path / "staging"
    staging.mkdir()
    token = CancelToken()
    token.bind(str(staging / "_cancel"))
    token.release()  # the run ended; its staging folder is being discarded
    token.cancel(wait=True)
    assert token.cancelled and not (staging / "_cancel").exists()


def test_a_remote_flag_is_watched_off_the_dofn_thread(monkeypatch):
    looked = []
    monkeypatch.setattr("beam_pipeline.runtime.cancel._REMOTE_CHECK_INTERVAL_S", 0.01)
    monkeypatch.setattr("beam_pipeline.source.storage.exists",
                        lambda path: looked.append(threading.current_thread().name) or True)
    check = CancelToken()
    check._path = "s3://bucket/index/.staging/x/_cancel"
    worker_check = check.check()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            worker_check()
        except Cancelled:
            break
        time.sleep(0.01)
    else:
        raise AssertionError("the remote flag was never seen")
    assert looked and set(looked) == {"cancel-flag"}
