"""Design-space sweeps (sw/sweep.py, sw/sweep_cli.py): the space, the front, a local Ray,
the cache and resuming an interrupted sweep."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from clockprop.core.errors import ClockpropError
from clockprop.sw.sweep import load_space, pareto_front, point_key, points, resolve

from conftest import assert_clean_error, clockprop

BASE = """
[format]
act_bits = 3
weight_bits = 3
[train]
rule = "ed"
hidden = [2]
epochs = 1
prune = 0.5
"""


def _space(tmp_path, body, name="s"):
    (tmp_path / "base.toml").write_text(BASE)
    path = tmp_path / f"{name}.toml"
    path.write_text(f'name = "{name}"\nbase = "base.toml"\nsynth = "none"\n{body}')
    return path


def test_grid_and_random_points(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    grid = load_space(_space(tmp_path, '[space]\n"train.hidden" = [[1], [2]]\n'
                                       '"format.weight_bits" = {range = [3, 5]}\n'
                                       '"train.seed" = 4\n'))
    pts = points(grid)
    assert len(pts) == 6 and pts[0] == {"train.hidden": [1], "format.weight_bits": 3,
                                        "train.seed": 4}
    rand = load_space(_space(tmp_path, 'sampling = "random"\nsamples = 5\nseed = 1\n[space]\n'
                                       '"train.lr" = {uniform = [0.01, 0.1]}\n'
                                       '"format.act_bits" = [2, 3, 4]\n'))
    first, again = points(rand), points(rand)
    assert first == again and len(first) == 5
    assert all(0.01 <= p["train.lr"] <= 0.1 for p in first)


def test_point_key_is_the_resolved_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    space = load_space(_space(tmp_path, '[space]\n"train.epochs" = [1, 2]\n'))
    run1, board = resolve(space, {"train.epochs": 1})
    run1b, _ = resolve(space, {"train.epochs": 1, "board": "icebreaker"})
    run2, _ = resolve(space, {"train.epochs": 2})
    assert point_key(run1, board) == point_key(run1b, "icebreaker")
    assert point_key(run1, board) != point_key(run2, board)
    assert point_key(run1, board) != point_key(run1, "ulx3s")


def test_joined_keys(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    space = load_space(_space(tmp_path, '[space]\n"train.hidden,train.fan_in" = '
                                        '[[[20], [2, 2]], [[40], [2, 4]]]\n"train.seed" = [0, 1]\n'))
    pts = points(space)
    assert len(pts) == 4
    assert pts[0] == {"train.hidden": [20], "train.fan_in": [2, 2], "train.seed": 0}
    assert resolve(space, pts[3])[0].train.fan_in == (2, 4)
    with pytest.raises(ClockpropError, match="joins 2 keys"):
        load_space(_space(tmp_path, '[space]\n"train.hidden,train.fan_in" = [[[20]]]\n'))


@pytest.mark.parametrize("body, needle", [
    ('[space]\n"train.hiden" = [[2]]\n', "unknown key 'train.hiden'"),
    ('[space]\n"fmt.act_bits" = [2]\n', "unknown key 'fmt.act_bits'"),
    ('[space]\n"train.epochs" = []\n', "empty list"),
    ('[space]\n"train.lr" = {uniform = [0.1, 0.2]}\n', "uniform needs sampling"),
    ('[space]\n"train.epochs" = {range = [5, 1]}\n', "holds no values"),
    ('[space]\n"train.epochs" = {steps = 3}\n', "a value is a scalar"),
    ('colour = "red"\n[space]\n"train.epochs" = [1]\n', "unknown setting(s) colour"),
    ('', "a [space] table"),
])
def test_bad_spaces(tmp_path, monkeypatch, body, needle):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ClockpropError) as e:
        load_space(_space(tmp_path, body))
    assert needle in str(e.value)


def test_pareto_front():
    rows = [{"key": k, "lut_estimate": l, "int_acc": a} for k, l, a in
            [("a", 100, 0.5), ("b", 200, 0.7), ("c", 150, 0.4), ("d", 300, 0.7),
             ("e", 400, 0.9), ("f", 100, 0.6), ("g", 50, None)]]
    assert [r["key"] for r in pareto_front(rows)] == ["f", "b", "e"]


def _results(tmp_path, name="s"):
    return json.loads((tmp_path / "out" / "results.json").read_text())


def test_tiny_sweep_on_a_local_ray_then_all_cached(tmp_path):
    space = _space(tmp_path, '[space]\n"train.hidden" = [[1], [2]]\n'
                             '"format.weight_bits" = [5, 6]\nboard = "ulx3s"\n')
    r = clockprop(tmp_path, "sweep", str(space), "--out", "out", "--cpus", "2")
    assert r.returncode == 0, r.stderr
    first = _results(tmp_path)
    assert first["points"] == 4 and first["computed"] == {"estimate": 4, "synthesis": 0}
    assert all(p["status"] == "done" and p["lut_estimate"] > 0 for p in first["results"])
    assert first["front"] and set(first["front"]) <= {p["key"] for p in first["results"]}
    for f in ("results.csv", "front.md", "pareto.png"):
        assert (tmp_path / "out" / f).stat().st_size > 0
    assert "sweep: estimate 4/4" in r.stderr                  # progress, one line a point

    r = clockprop(tmp_path, "sweep", str(space), "--out", "out")
    assert r.returncode == 0, r.stderr
    second = _results(tmp_path)
    assert second["computed"] == {"estimate": 0, "synthesis": 0}
    assert [p["int_acc"] for p in second["results"]] == [p["int_acc"] for p in first["results"]]
    assert "Ray" not in r.stderr                               # nothing to do: no Ray started


def test_a_failing_point_is_recorded_and_the_sweep_goes_on(tmp_path):
    # fan-in 5 of 3-bit activations: 15 input bits per truth table, over lut_bits = 6.
    space = _space(tmp_path, '[space]\n"train.fan_in" = [0, 5]\nboard = "ulx3s"\n'
                             '"format.weight_bits" = 6\n')
    r = clockprop(tmp_path, "sweep", str(space), "--out", "out", "--cpus", "1")
    assert r.returncode == 0, r.stderr
    results = _results(tmp_path)["results"]
    assert [p["status"] for p in results] == ["done", "failed"], results
    assert "lut_bits" in results[1]["reason"]
    assert "lut_bits" in (tmp_path / "out" / "front.md").read_text()


def test_interrupted_sweep_resumes_without_recomputing(tmp_path):
    space = _space(tmp_path, '[space]\n"train.seed" = [0, 1, 2, 3, 4, 5]\n'
                             '"train.epochs" = 12\n"train.hidden" = [[6]]\n'
                             '"format.weight_bits" = 6\nboard = "ulx3s"\n')
    cmd = [sys.executable, "-m", "clockprop.sw.cli", "sweep", str(space), "--out", "out",
           "--cpus", "1"]
    driver = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    points_dir = tmp_path / "out" / "points"
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and driver.poll() is None:
            if points_dir.exists() and any(".model." not in p.name
                                           for p in points_dir.glob("*.json")):
                break
            time.sleep(0.2)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)               # the driver and its local Ray
        driver.wait(timeout=60)
    done_before = {p.name for p in points_dir.glob("*.json") if ".model." not in p.name}
    assert 1 <= len(done_before) < 6, "the kill came too late to interrupt the sweep"

    r = clockprop(tmp_path, "sweep", str(space), "--out", "out", "--cpus", "2")
    assert r.returncode == 0, r.stderr
    summary = _results(tmp_path)
    assert summary["points"] == 6 and summary["cached"] == len(done_before)
    assert summary["computed"]["estimate"] == 6 - len(done_before)
    assert all(p["status"] == "done" for p in summary["results"])


def test_unreachable_ray_address(tmp_path):
    space = _space(tmp_path, '[space]\n"train.epochs" = [1]\n')
    start = time.monotonic()
    r = clockprop(tmp_path, "sweep", str(space), "--out", "out", "--address",
                  "ray://127.0.0.1:9")
    assert_clean_error(r, "cannot reach the Ray cluster at ray://127.0.0.1:9")
    assert time.monotonic() - start < 25
    assert not (tmp_path / "out" / "results.json").exists()


def test_bad_space_on_the_command_line(tmp_path):
    space = _space(tmp_path, '[space]\n"train.epochs" = []\n')
    assert_clean_error(clockprop(tmp_path, "sweep", str(space)), "empty list")
    assert_clean_error(clockprop(tmp_path, "sweep", "nope.toml"), "does not exist")
