"""Trainings shared by several processes through one work directory (``jobs > 1``): a claimed
task is deferred, not repeated; its record is read once the other process writes it; a task whose
claimer stopped without a record is trained here. The other process is played by this test,
holding the claim on its own file descriptor (``flock`` locks conflict between descriptors)."""
import contextvars
import json
import os
import threading

import pytest

from linvae._store import claim
from linvae.experiments import _nonlinear_common as common


def _task(label, calls, value):
    def run():
        calls.append(label)
        return [[label, 0, {"value": value}]], {"models": 1, "epochs": 1, "resumed_from": None,
                                                "train_seconds": 0.0}
    return (label, {"training": label}, run, None)


def _in_thread(fn):
    box = {}
    context = contextvars.copy_context()        # the work directory is a context variable
    t = threading.Thread(target=lambda: box.update(result=context.run(fn)))
    t.start()
    return t, box


def test_claim_excludes_a_second_holder_and_is_free_again_after(tmp_path):
    path = str(tmp_path / "a.claim")
    with claim(path, wait=False) as first:
        with claim(path, wait=False) as second:
            assert first is True and second is False
    with claim(path, wait=False) as again:
        assert again is True


def test_a_claimed_training_is_deferred_then_read_from_the_other_process_record(tmp_path):
    calls = []
    with common.work_directory(str(tmp_path)) as ledger:
        other = claim(str(tmp_path / "a.claim"))
        other.__enter__()                        # another process is training "a"
        t, box = _in_thread(lambda: common.finished_all([_task("a", calls, 1.0), _task("b", calls, 2.0)]))
        for _ in range(200):                     # "b" is trained meanwhile; "a" is not touched
            if os.path.exists(tmp_path / ("b" + common.RESULT_SUFFIX)):
                break
            t.join(0.05)
        assert calls == ["b"] and t.is_alive()
        record = {"format": "linvae-finished-1", "identity": {"training": "a"},
                  "record": {"models": 1, "epochs": 1, "resumed_from": None, "train_seconds": 5.0},
                  "entries": [["a", 0, {"value": 7.0}]]}
        with open(tmp_path / ("a" + common.RESULT_SUFFIX), "w") as f:
            json.dump(record, f)
        other.__exit__(None, None, None)
        t.join(10)
    assert not t.is_alive() and calls == ["b"]
    assert box["result"] == {("a", 0): {"value": 7.0}, ("b", 0): {"value": 2.0}}
    assert [r.get("reused", False) for r in ledger] == [True, False]        # ledger in task order


def test_a_training_whose_claimer_stopped_without_a_record_is_trained_here(tmp_path):
    calls = []
    with common.work_directory(str(tmp_path)):
        other = claim(str(tmp_path / "a.claim"))
        other.__enter__()
        t, box = _in_thread(lambda: common.finished_all([_task("a", calls, 1.0)]))
        t.join(0.3)
        assert t.is_alive() and calls == []      # waiting for the other process
        other.__exit__(None, None, None)         # it stops without writing a record
        t.join(10)
    assert calls == ["a"] and box["result"] == {("a", 0): {"value": 1.0}}
    with open(tmp_path / ("a" + common.RESULT_SUFFIX)) as f:
        assert json.load(f)["entries"] == [["a", 0, {"value": 1.0}]]


def test_done_runs_after_the_record_is_kept_and_outside_a_work_directory_nothing_is_written(tmp_path):
    seen = []
    label, identity, run, _ = _task("a", [], 1.0)
    with common.work_directory(str(tmp_path)):
        common.finished_all([(label, identity, run,
                              lambda: seen.append(os.path.exists(tmp_path / ("a" + common.RESULT_SUFFIX))))])
    assert seen == [True]
    os.remove(tmp_path / ("a" + common.RESULT_SUFFIX))
    assert common.finished_all([_task("a", [], 1.0)]) == {("a", 0): {"value": 1.0}}
    assert not os.path.exists(tmp_path / ("a" + common.RESULT_SUFFIX))


if __name__ == "__main__":
    pytest.main([__file__])
