"""The ``linvae predict`` command: table contents vs predict_collapse, errors, MNIST, entry point."""
import os
import subprocess
import sys

import numpy as np
import pytest

import linvae
from linvae.cli import main

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse(out):
    """Rows of the printed table as a list of dicts (column name -> float)."""
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if "n_collapsed" in line.split())
    names = lines[head].split()
    assert set(lines[head + 1]) == {"-"}
    rows = []
    for line in lines[head + 2:]:
        if not line.strip():
            break
        values = line.split()
        assert len(values) == len(names), line
        rows.append(dict(zip(names, map(float, values))))
    return rows


@pytest.fixture
def npz(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(150, 5)) * [3.0, 1.5, 0.9, 0.5, 0.1]
    Y = X[:, :3] @ rng.normal(size=(3, 3)) * 0.5 + rng.normal(size=(150, 3)) * [1.2, 0.6, 0.3]
    path_xy = tmp_path / "xy.npz"
    path_x = tmp_path / "x.npz"
    np.savez(path_xy, X=X, Y=Y)
    np.savez(path_x, X=X)
    return X, Y, str(path_x), str(path_xy)


def _run(argv, capsys):
    rc = main(argv)
    out = capsys.readouterr().out
    assert rc == 0
    return _parse(out), out


def _check_counts(rows, table, keys):
    assert len(rows) == len(table)
    expected = {tuple(float(table[k][i]) for k in keys): int(table["n_collapsed"][i]) for i in range(len(table))}
    got = {}
    for r in rows:
        key = tuple(r[k] for k in keys)
        # printed with 4 significant digits: match each printed key to the table's exact key
        match = [k for k in expected if np.allclose(k, key, rtol=1e-3, atol=0)]
        assert len(match) == 1, (key, match)
        got[match[0]] = int(r["n_collapsed"])
    assert got == expected


def test_predict_vae_table_matches_api(npz, capsys):
    X, _, path_x, _ = npz
    betas, eds = [0.05, 0.5, 2.0, 20.0], [0.25, 1.0]
    rows, out = _run(["predict", "--data", path_x, "--beta", *map(str, betas), "--eta-dec", *map(str, eds)],
                     capsys)
    table = linvae.predict_collapse(X, beta=betas, eta_dec=eds)
    assert len(rows) == len(betas) * len(eds)
    assert len({r["n_collapsed"] for r in rows}) >= 3     # the grid spans several outcomes
    _check_counts(rows, table, ["beta", "eta_dec"])
    for r in rows:
        assert r["n_collapsed"] + r["n_active"] == 5
    assert "Thm 4" in out and "N = 150" in out


def test_predict_cvae_table_matches_api(npz, capsys):
    X, Y, _, path_xy = npz
    betas, eds, ees = [0.1, 1.0, 4.0], [0.3, 1.0], [0.5, 2.0]
    rows, out = _run(["predict", "--data", path_xy, "--model", "cvae", "--latent-dim", "4",
                      "--beta", *map(str, betas), "--eta-dec", *map(str, eds), "--eta-enc", *map(str, ees)],
                     capsys)
    table = linvae.predict_collapse(X, Y, beta=betas, eta_dec=eds, eta_enc=ees, latent_dim=4)
    assert len(rows) == 12
    _check_counts(rows, table, ["beta", "eta_enc", "eta_dec"])
    assert "Thm 2" in out


def test_predict_mhvae_table_matches_api(npz, capsys):
    X, _, path_x, path_xy = npz
    b1, b2 = [0.5, 2.0], [0.1, 1.0, 5.0]
    rows, _ = _run(["predict", "--data", path_xy, "--model", "mhvae", "--beta1", *map(str, b1),
                    "--beta2", *map(str, b2), "--sigma1", "0.3", "--eta-dec", "0.7"], capsys)
    table = linvae.predict_collapse(X, model="mhvae", beta1=b1, beta2=b2, sigma1=0.3, eta_dec=0.7)
    assert len(rows) == 6
    _check_counts(rows, table, ["beta1", "beta2"])


def test_predict_vae_ignores_y_in_file(npz, capsys):
    X, _, path_x, path_xy = npz
    rows_xy, _ = _run(["predict", "--data", path_xy, "--beta", "1"], capsys)
    rows_x, _ = _run(["predict", "--data", path_x, "--beta", "1"], capsys)
    assert rows_xy == rows_x
    assert rows_x[0]["n_collapsed"] == linvae.fit(X, beta=1.0).n_collapsed


def _exit_message(excinfo, capsys):
    code = excinfo.value.code
    err = capsys.readouterr().err
    assert code not in (0, None)
    return (code if isinstance(code, str) else "") + err


def test_cvae_without_y_fails(npz, capsys):
    _, _, path_x, _ = npz
    with pytest.raises(SystemExit) as info:
        main(["predict", "--data", path_x, "--model", "cvae"])
    msg = _exit_message(info, capsys)
    assert "Y" in msg and "cvae" in msg


def test_missing_file_fails(tmp_path, capsys):
    missing = str(tmp_path / "nothere.npz")
    with pytest.raises(SystemExit) as info:
        main(["predict", "--data", missing])
    msg = _exit_message(info, capsys)
    assert "nothere.npz" in msg and "not exist" in msg


def test_not_npz_and_missing_x_fail(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["predict", "--data", str(tmp_path / "data.csv")])
    assert "npz" in _exit_message(info, capsys)
    path = tmp_path / "noX.npz"
    np.savez(path, Z=np.ones((3, 2)))
    with pytest.raises(SystemExit) as info:
        main(["predict", "--data", str(path)])
    assert "'X'" in _exit_message(info, capsys)


def test_bad_hyperparameter_fails(npz, capsys):
    _, _, path_x, _ = npz
    with pytest.raises(SystemExit) as info:
        main(["predict", "--data", path_x, "--beta", "1", "-2"])
    msg = _exit_message(info, capsys)
    assert "beta" in msg and "-2" in msg


@pytest.mark.slow
def test_mnist_cvae(capsys):
    from linvae.data import load_mnist_subset, quadrant_split

    rows, out = _run(["predict", "--data", "mnist", "--model", "cvae", "--latent-dim", "64", "--beta", "1",
                      "--eta-dec", "1"], capsys)
    images, _, _ = load_mnist_subset()
    x, y = quadrant_split(images)
    table = linvae.predict_collapse(x, y, latent_dim=64, beta=1.0, eta_dec=1.0)
    assert len(rows) == 1
    assert rows[0]["n_collapsed"] == table["n_collapsed"][0]
    assert rows[0]["n_collapsed"] + rows[0]["n_active"] == 64
    assert "N = 5000" in out
    # an independent count from Thm 2: dims whose residual eigenvalue exceeds β η_dec² = 1 are active
    N = x.shape[0]
    coef = np.linalg.lstsq(x, y, rcond=None)[0]
    r = y - x @ coef
    eig = np.linalg.eigvalsh(r.T @ r / N)
    assert rows[0]["n_active"] == min(64, int(np.sum(eig > 1.0)))


@pytest.mark.slow
def test_entry_point_subprocess(npz):
    X, _, path_x, _ = npz
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-m", "linvae", "predict", "--data", path_x, "--beta", "0.05", "2",
                           "20"], capture_output=True, text=True, env=env, cwd=os.path.dirname(path_x),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = _parse(proc.stdout)
    table = linvae.predict_collapse(X, beta=[0.05, 2.0, 20.0])
    assert [int(r["n_collapsed"]) for r in rows] == table["n_collapsed"].tolist()
    bad = subprocess.run([sys.executable, "-m", "linvae", "predict", "--data", path_x + ".missing.npz"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert bad.returncode != 0 and "does not exist" in bad.stderr
    version = subprocess.run([sys.executable, "-m", "linvae", "--version"], capture_output=True, text=True,
                             env=env, timeout=120)
    assert version.returncode == 0 and linvae.__version__ in version.stdout


# ----------------------------------------------------------------------------- issue #18

def test_predict_formats_and_array_files(tmp_path, capsys):
    import json

    import linvae

    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 4)) * [2.0, 1.0, 0.5, 0.25]
    betas = ["0.2", "1", "5"]
    ref = linvae.predict_collapse(X, beta=[0.2, 1.0, 5.0])
    np.save(tmp_path / "x.npy", X)
    np.savetxt(tmp_path / "x.csv", X, delimiter=",", header="a,b,c,d", comments="")
    for path in (tmp_path / "x.npy", tmp_path / "x.csv"):
        assert main(["predict", "--data", str(path), "--beta", *betas, "--format", "json"]) == 0
        got = json.loads(capsys.readouterr().out)
        assert got["n_collapsed"] == ref["n_collapsed"].tolist()
        np.testing.assert_allclose(np.array(got["kl_per_dim"], dtype=float), ref.kl_per_dim, rtol=1e-12)
    assert main(["predict", "--data", str(tmp_path / "x.npy"), "--beta", *betas, "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    head = lines[0].split(",")
    assert head[:3] == ["beta", "eta_enc", "eta_dec"] and "kl_3" in head and "collapsed_0" in head
    assert len(lines) == 4
    for r, line in enumerate(lines[1:]):
        row = dict(zip(head, line.split(",")))
        assert int(row["n_collapsed"]) == ref["n_collapsed"][r]
        assert float(row["kl_1"]) == ref.kl_per_dim[r, 1]
    with pytest.raises(SystemExit) as info:
        main(["predict", "--data", str(tmp_path / "x.npy"), "--model", "cvae"])
    assert "npz" in _exit_message(info, capsys)


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    out = capsys.readouterr().out
    assert "(default: mnist)" in out and "(default: table)" in out
    with pytest.raises(SystemExit):
        main(["reproduce", "--help"])
    assert "(default: results)" in capsys.readouterr().out


def _cli(argv, capsys):
    """(exit status, stderr text) of ``main(argv)``, as the interpreter would report them."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err
    if isinstance(code, str):             # SystemExit("message"): printed to stderr, status 1
        return 1, err + code
    return code, err


def test_cli_errors_are_one_line_with_a_fixed_prefix_and_status(tmp_path, capsys):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    empty = tmp_path / "empty.npz"
    np.savez(empty)
    nokey = tmp_path / "nokey.npz"
    np.savez(nokey, images=np.zeros((2, 784)))
    cases = [
        (["reproduce", "table1", "--quick", "--data", str(tmp_path / "nodir"), "--out", str(tmp_path / "o1")],
         2, "nodir"),
        (["reproduce", "table1", "--quick", "--data", str(garbage), "--out", str(tmp_path / "o2")], 2, "garbage"),
        (["reproduce", "table1", "--quick", "--data", str(empty), "--out", str(tmp_path / "o3")], 2, "x_train"),
        (["reproduce", "table1", "--quick", "--data", str(nokey), "--out", str(tmp_path / "o4")], 2, "x_train"),
        (["reproduce", "report", "--out", str(tmp_path / "missing")], 2, "missing"),
        (["predict", "--data", str(garbage)], 2, "garbage"),
        (["predict", "--data", str(tmp_path / "none.npz")], 2, "not exist"),
    ]
    for argv, status, needle in cases:
        code, err = _cli(argv, capsys)
        lines = err.strip().splitlines()
        assert code == status, (argv, code, err)
        assert len(lines) == 1 and lines[0].startswith(f"linvae {argv[0]}: error: "), (argv, err)
        assert needle in lines[0] and "Traceback" not in err
    # a failed run leaves no empty output directory it created
    assert not [n for n in os.listdir(tmp_path) if n.startswith("o")]


def test_cli_unwritable_out_is_a_runtime_error(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes everywhere")
    locked = tmp_path / "ro"
    locked.mkdir()
    os.chmod(locked, 0o500)
    try:
        code, err = _cli(["reproduce", "table1", "--quick", "--out", str(locked / "o")], capsys)
    finally:
        os.chmod(locked, 0o700)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("linvae reproduce: error: "), err
    assert "Permission denied" in lines[0]


def test_reproduce_jobs_is_refused_for_an_experiment_that_cannot_share(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["reproduce", "fig2b", "--quick", "--jobs", "2", "--out", str(tmp_path)])
    msg = _exit_message(info, capsys)
    assert "jobs=2" in msg and "'fig2b' is not one" in msg and "fig3b" in msg
    assert not os.listdir(tmp_path)


def test_help_states_each_default_once_and_explains_every_option(capsys):
    for command in ("predict", "reproduce", "doctor"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert "(default: None)" not in out and "(default: False)" not in out
        assert out.count("(default: embedded subset)") <= 1
        flat = " ".join(out.split())
        assert "default: embedded subset) (default" not in flat
    from linvae.cli import build_parser

    reproduce = build_parser()._subparsers._group_actions[0].choices["reproduce"]
    assert all(a.help for a in reproduce._actions), [a.dest for a in reproduce._actions if not a.help]


def test_list_aligns_every_title(capsys):
    assert main(["reproduce", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    starts = {len(line) - len(line.split("  ", 1)[1].lstrip()) for line in lines}
    assert len(starts) == 1 and len(lines) >= 10


def test_reproduce_logs_a_line_per_stage_when_stderr_is_not_a_terminal(tmp_path, capsys):
    import logging

    log = logging.getLogger("linvae.experiments")
    before = (log.level, log.propagate, list(log.handlers))
    assert main(["reproduce", "fig1", "--quick", "--out", str(tmp_path)]) == 0
    err = capsys.readouterr().err.splitlines()
    stages = [line for line in err if "linvae reproduce: fig1" in line]
    words = [s.split("linvae reproduce: fig1", 1)[1].lstrip(": ").split()[0] for s in stages]
    assert words == ["computing", "computed", "done"], err
    assert (log.level, log.propagate, list(log.handlers)) == before      # restored for the next command
