"""``--overwrite`` replaces what linvae wrote in a result directory and nothing else (issue #35, item 1)."""
import os

import pytest

from linvae import experiments
from linvae._store import MANIFEST
from linvae.cli import main


def _listing(path):
    return sorted(os.listdir(path))


def test_overwrite_keeps_a_users_files_and_folders(tmp_path):
    out = str(tmp_path)
    assert main(["reproduce", "table1", "--quick", "--out", out]) == 0
    folder = tmp_path / "table1"
    written = set(os.listdir(folder))
    assert MANIFEST in written
    (folder / "analysis.R").write_text("my own analysis\n")
    (folder / "drafts").mkdir()
    (folder / "drafts" / "fig.svg").write_text("<svg/>")
    (folder / "meta.json").touch()
    before = os.path.getmtime(folder / "meta.json")
    assert main(["reproduce", "table1", "--quick", "--out", out, "--overwrite"]) == 0
    assert (folder / "analysis.R").read_text() == "my own analysis\n"
    assert (folder / "drafts" / "fig.svg").read_text() == "<svg/>"
    assert set(os.listdir(folder)) == written | {"analysis.R", "drafts"}
    assert os.path.getmtime(folder / "meta.json") >= before           # linvae's own file was rewritten
    assert (folder / MANIFEST).read_text().split() == sorted(written - {MANIFEST})
    assert not [n for n in os.listdir(out) if n.startswith(".linvae-tmp-")]


def test_a_stale_output_linvae_wrote_is_replaced(tmp_path):
    out = str(tmp_path)
    experiments.run_experiment("table1", out, quick="tiny")
    folder = tmp_path / "table1"
    (folder / "old_figure.pdf").write_text("from an older version")
    with open(folder / MANIFEST, "a") as f:        # as an older linvae would have listed it
        f.write("old_figure.pdf\n")
    experiments.run_experiment("table1", out, quick="tiny", overwrite=True)
    assert not (folder / "old_figure.pdf").exists()


def test_a_users_file_the_new_run_would_replace_is_refused(tmp_path):
    out = str(tmp_path)
    experiments.run_experiment("table1", out, quick="tiny")
    folder = tmp_path / "table1"
    names = (folder / MANIFEST).read_text().split()
    victim = [n for n in names if n != "meta.json"][0]
    (folder / victim).write_bytes(b"the user's own version")
    with open(folder / MANIFEST, "w") as f:        # the user's file: not in linvae's list
        f.write("".join(n + "\n" for n in names if n != victim))
    listing = _listing(folder)
    with pytest.raises(FileExistsError, match=victim):
        experiments.run_experiment("table1", out, quick="tiny", overwrite=True)
    assert (folder / victim).read_bytes() == b"the user's own version"
    assert _listing(folder) == listing


def test_a_directory_without_manifest_keeps_every_file_the_new_run_does_not_write(tmp_path):
    out = str(tmp_path)
    experiments.run_experiment("table1", out, quick="tiny")
    folder = tmp_path / "table1"
    os.unlink(folder / MANIFEST)                   # as results written before the manifest existed
    (folder / "notes.md").write_text("kept")
    experiments.run_experiment("table1", out, quick="tiny", overwrite=True)
    assert (folder / "notes.md").read_text() == "kept"
    assert (folder / MANIFEST).exists()


def test_overwrite_refuses_a_file_in_place_of_the_result_directory(tmp_path):
    (tmp_path / "table1").write_text("not a directory")
    with pytest.raises(FileExistsError, match="not a directory"):
        experiments.run_experiment("table1", str(tmp_path), quick="tiny", overwrite=True)
    assert (tmp_path / "table1").read_text() == "not a directory"
