"""Issue 13, cases 1-5 and 12: no data is ever lost or corrupted in a run directory."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import genloom as gl
from genloom import run as rundir
from genloom.errors import UserError
from genloom.train import Trainer

from .conftest import TINY, assert_clean, cli, cli_process, digest, train_args

# ---- 1. --overwrite deletes only a genloom run ------------------------------------------------------------


def test_overwrite_refuses_a_folder_that_merely_has_a_config_toml(capsys, tmp_path, small_text):
    site = tmp_path / "site"
    (site / "content").mkdir(parents=True)
    (site / "content" / "index.md").write_text("# my blog")
    (site / "config.toml").write_text('title = "my blog"\n')
    before = digest(site)
    outcome = cli(capsys, *train_args(small_text, site, "--overwrite"))
    assert_clean(outcome, 2, "not a genloom run; refusing to delete it")
    assert digest(site) == before


def test_overwrite_refuses_a_run_holding_files_a_run_does_not_make(capsys, run, small_text):
    (run / "notes.txt").write_text("mine")
    before = digest(run)
    outcome = cli(capsys, *train_args(small_text, run, "--overwrite"))
    assert_clean(outcome, 2, "'notes.txt', which a genloom run does not make")
    assert digest(run) == before


def test_overwrite_replaces_a_marked_run(capsys, run, small_text):
    assert rundir.run_marker(run) == rundir.RUN_FORMAT
    (run / "samples" / "old.txt").write_text("from the old run")
    outcome = cli(capsys, *train_args(small_text, run, "--overwrite"))
    assert outcome.code == 0, outcome.output
    assert not (run / "samples" / "old.txt").exists()


# ---- 2. reading a run never disturbs its training ---------------------------------------------------------


def test_reading_a_run_while_it_trains_never_disturbs_it(tmp_path, small_text):
    out = tmp_path / "live"
    argv = train_args(small_text, out)
    argv += ["--set", "train.max_iters=60", "--set", "train.eval_interval=1"]  # a checkpoint at every step
    proc = subprocess.Popen(
        [sys.executable, "-m", "genloom", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    reads = 0
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if (out / rundir.WEIGHTS).exists():
            try:
                gl.load(out)  # every load path used to delete the trainer's in-flight *.tmp checkpoint
                reads += 1
            except UserError:
                pass  # a reader may see a half-started run; it must just never break the writer
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert reads >= 3
    assert rundir.load_state(out)["step"] == 60
    assert [r["step"] for r in rundir.read_metrics(out)] == list(range(1, 61))


def test_recovery_waits_for_a_live_writer_and_a_second_writer_is_refused(capsys, run, small_text):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom genloom import run\nwith run.writer_lock(sys.argv[1]):\n"
            "    print('locked', flush=True)\n    time.sleep(60)",
            str(run),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        in_flight = run / (rundir.WEIGHTS + ".tmp")
        in_flight.write_bytes(b"half of a checkpoint")
        before = digest(run)
        with pytest.raises(UserError, match=f"pid {holder.pid}"):
            rundir.recover(run)
        assert in_flight.read_bytes() == b"half of a checkpoint"  # the writer's file is untouched
        gl.load(run)  # a reader does not recover at all, so it neither fails nor deletes
        outcome = cli(capsys, *train_args(small_text, run, "--resume", "--set", "train.max_iters=6"))
        assert_clean(outcome, 2, "another genloom process", "is writing this run")
        assert digest(run) == before
    finally:
        holder.kill()
        holder.wait()


# ---- 3. no metrics row is lost -----------------------------------------------------------------------------


def stop_after_save(monkeypatch: pytest.MonkeyPatch, at_step: int, before: bool = False) -> None:
    """A kill right after (or right before) the checkpoint of `at_step`, as a KeyboardInterrupt."""
    real = Trainer.save

    def save(self: Trainer) -> None:
        if self.step == at_step and before:
            raise KeyboardInterrupt("killed before the checkpoint")
        real(self)
        if self.step == at_step:
            raise KeyboardInterrupt("killed after the checkpoint")

    monkeypatch.setattr(Trainer, "save", save)


def test_a_kill_right_after_a_checkpoint_loses_no_metrics_row(monkeypatch, tmp_path, small_text):
    sets = [*TINY, "train.progress=false", "train.max_iters=6"]
    gl.train("gpt", out=tmp_path / "whole", data=str(small_text), preset="debug", sets=sets)
    stop_after_save(monkeypatch, at_step=4)
    with pytest.raises(KeyboardInterrupt):
        gl.train("gpt", out=tmp_path / "cut", data=str(small_text), preset="debug", sets=sets)
    monkeypatch.undo()
    gl.train("gpt", out=tmp_path / "cut", preset="debug", sets=sets, resume=True)
    cut, whole = rundir.read_metrics(tmp_path / "cut"), rundir.read_metrics(tmp_path / "whole")
    assert [r["step"] for r in cut] == [1, 2, 3, 4, 5, 6]
    assert "val_loss" in cut[3]  # the checkpointed step's row, with its validation loss
    assert [(r["train_loss"], r.get("val_loss")) for r in cut] == [(r["train_loss"], r.get("val_loss")) for r in whole]


# ---- 4. killed before the first checkpoint; a failed resume --------------------------------------------------


def test_a_run_killed_before_its_first_checkpoint_resumes_from_step_0(monkeypatch, tmp_path, small_text):
    sets = [*TINY, "train.progress=false"]
    gl.train("gpt", out=tmp_path / "whole", data=str(small_text), preset="debug", sets=sets)
    stop_after_save(monkeypatch, at_step=2, before=True)
    with pytest.raises(KeyboardInterrupt):
        gl.train("gpt", out=tmp_path / "cut", data=str(small_text), preset="debug", sets=sets)
    monkeypatch.undo()
    assert not (tmp_path / "cut" / rundir.STATE).exists() and rundir.read_metrics(tmp_path / "cut")
    gl.train("gpt", out=tmp_path / "cut", preset="debug", sets=sets, resume=True)
    losses = [[r["train_loss"] for r in rundir.read_metrics(tmp_path / name)] for name in ("cut", "whole")]
    assert losses[0] == losses[1] and len(losses[0]) == 4


def test_a_run_killed_while_being_set_up_says_to_start_again(capsys, tmp_path, small_text):
    from genloom.api.runs import resolve_config
    from genloom.config import dump_toml

    out = tmp_path / "half"  # killed right after its config.toml, the first file a run writes
    out.mkdir()
    rc = resolve_config("gpt", "debug", data=str(small_text))
    (out / rundir.CONFIG).write_text(dump_toml(rundir.marked(rc.to_dict())))
    outcome = cli(capsys, *train_args(small_text, out, "--resume"))
    assert_clean(outcome, 2, "stopped before it was set up", "--overwrite")
    assert cli(capsys, *train_args(small_text, out, "--overwrite")).code == 0


def test_a_failed_resume_leaves_config_toml_as_it_was(capsys, run, small_text):
    (run / rundir.STATE).write_bytes(b"not a checkpoint")
    before = digest(run)
    outcome = cli(capsys, *train_args(small_text, run, "--resume", "--set", "train.max_iters=50"))
    assert_clean(outcome, 2, "unreadable trainer state")
    assert digest(run) == before


# ---- 5. disk full, read-only or unwritable --out, --out under a file ------------------------------------------

DISK_FULL = """
import errno, os
real_fsync = os.fsync
def fsync(fd):
    if os.readlink(f"/proc/self/fd/{fd}").endswith(".safetensors.tmp"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    real_fsync(fd)
os.fsync = fsync
"""


def test_disk_full_while_checkpointing_keeps_the_old_checkpoint(run, small_text):
    checkpoint = [rundir.WEIGHTS, rundir.BEST, rundir.STATE, rundir.TOKENIZER, "state/data.json"]
    before = {k: v for k, v in digest(run).items() if k in checkpoint}
    outcome = cli_process(*train_args(small_text, run, "--resume", "--set", "train.max_iters=6"), prelude=DISK_FULL)
    assert_clean(outcome, 2, "No space left on device")
    assert {k: v for k, v in digest(run).items() if k in checkpoint} == before
    assert not list(run.rglob("*.tmp"))  # no half-written file either


READ_ONLY = """
import errno, os
real_mkdir = os.mkdir
def mkdir(path, *args, **kwargs):  # the file system under TARGET is mounted read-only
    if os.fspath(path).startswith(TARGET):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
    return real_mkdir(path, *args, **kwargs)
os.mkdir = mkdir
"""


def test_read_only_or_unwritable_out_is_one_line(small_text, base_run, tmp_path):
    """Without root, a real unwritable folder; as root (who writes anywhere, and may not remount) the
    kernel's answer for a read-only file system is injected where the run directory is made."""
    parent = tmp_path / "locked"
    parent.mkdir()
    before = digest(base_run)
    if os.getuid() != 0:
        parent.chmod(0o555)
        outcome = cli_process(*train_args(small_text, parent / "run"))
        parent.chmod(0o755)
        assert_clean(outcome, 2, "is not writable")
    else:
        outcome = cli_process(*train_args(small_text, parent / "run"), prelude=f"TARGET = {str(parent)!r}" + READ_ONLY)
        assert_clean(outcome, 2, "Read-only file system")
    assert list(parent.iterdir()) == []
    assert digest(base_run) == before


def test_out_under_a_file_is_one_line(capsys, tmp_path, small_text):
    (tmp_path / "a-file").write_text("x")
    outcome = cli(capsys, *train_args(small_text, tmp_path / "a-file" / "run"))
    assert_clean(outcome, 2, "is a file, not a directory")
    assert (tmp_path / "a-file").read_text() == "x"


# ---- 12. checkpoint files get the run's permissions ---------------------------------------------------------


def test_checkpoint_files_get_the_same_permissions_as_the_rest_of_the_run(base_run, tmp_path):
    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    expected = 0o666 & ~_umask()
    assert mode(base_run / rundir.CONFIG) == expected
    for name in (rundir.WEIGHTS, rundir.BEST, rundir.STATE, rundir.TOKENIZER, rundir.METRICS):
        assert mode(base_run / name) == expected, name
    rundir.save_tensors({"head.weight": torch.zeros(2)}, tmp_path / "value_head.safetensors")  # tuned runs' extras
    assert mode(tmp_path / "value_head.safetensors") == expected


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def test_every_file_a_run_makes_is_one_overwrite_may_delete(base_run, image_run):
    """RUN_FILES must name all a run writes, or --overwrite would refuse genloom's own runs."""
    for run in (base_run, image_run):
        assert {p.name for p in run.iterdir()} <= rundir.RUN_FILES, run


def test_a_run_killed_while_writing_its_first_file_starts_again(capsys, tmp_path, small_text):
    out = tmp_path / "born"
    out.mkdir()
    (out / (rundir.CONFIG + ".tmp")).write_text("genloom_run = 1\n[mod")  # a kill in the first write
    (out / rundir.LOCK).write_text("12345\n")
    assert cli(capsys, *train_args(small_text, out)).code == 0
    assert not (out / (rundir.CONFIG + ".tmp")).exists() and rundir.run_marker(out) == rundir.RUN_FORMAT
