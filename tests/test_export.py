"""The export package (hw/export.py): module names, no machine paths, lint, the
self-checking testbench under Icarus Verilog and Verilator, and its bad input."""

import json
import shutil
import subprocess

import numpy as np
import pytest

from clockprop.core.errors import ClockpropError
from clockprop.core.qformat import QFormat
from clockprop.hw.export import LINT_WAIVERS, export, module_name
from clockprop.sim.exported import run_exported
from clockprop.sim.verilator import find_verilator

from conftest import assert_clean_error, clockprop, random_model

FMT = QFormat(act_bits=3, weight_bits=4, bias_bits=12)
needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None,
                                    reason="Icarus Verilog is not installed (apt install "
                                           "iverilog; .ci/run installs it)")


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(5)
    m = random_model(rng, [6, 5, 3], FMT, frac=3)
    m.meta["name"] = "small"
    return m


@pytest.fixture(scope="module")
def vectors(model):
    return np.random.default_rng(1).integers(0, 2 ** FMT.act_bits, (40, model.n_inputs))


@pytest.fixture(scope="module")
def package(tmp_path_factory, model, vectors):
    out = tmp_path_factory.mktemp("export")
    export(model, out, "small", vectors=vectors)
    return out


def test_package_files_and_manifest(package, model):
    manifest = json.loads((package / "manifest.json").read_text())
    names = {"small.v", "small.il", "small.vlt", "small_in.hex", "small_out.hex",
             "tb_small.v", "README.md"}
    assert set(manifest["files"]) == names
    assert {p.name for p in package.iterdir()} == names | {"manifest.json"}
    assert manifest["module"].startswith("small_") and len(manifest["module"]) == 14
    assert manifest["vectors"] == 40 and manifest["samples_per_clock"] == 1
    widths = {p["name"]: p["width"] for p in manifest["ports"]}
    assert widths["i__payload"] == 6 * FMT.act_bits
    verilog = (package / "small.v").read_text()
    assert f"module {manifest['module']}(" in verilog
    readme = (package / "README.md").read_text()
    for needle in (manifest["module"], "i__payload", "latency", "iverilog", "-Wall"):
        assert needle in readme


def test_no_machine_paths(package):
    import clockprop
    from pathlib import Path
    root = str(Path(clockprop.__file__).resolve().parent.parent)
    for name in ("small.v", "small.il"):
        text = (package / name).read_text()
        assert root not in text and "src =" not in text and ".py:" not in text


def test_module_names_differ_by_options(model, tmp_path):
    a = module_name(model, "m", {"register_every": 0})
    assert a == module_name(model, "m", {"register_every": 0})
    assert a != module_name(model, "m", {"register_every": 1})
    export(model, tmp_path / "a", "small", register_every=0)
    export(model, tmp_path / "b", "small", register_every=1)
    # Both exports compile into one design: no module is declared twice.
    command, env = find_verilator()
    r = subprocess.run(command + ["--lint-only", "-Wno-fatal", str(tmp_path / "a/small.v"),
                                  str(tmp_path / "b/small.v"), "--top-module",
                                  json.loads((tmp_path / "a/manifest.json").read_text())
                                  ["module"]],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 0 and "already declared" not in r.stderr, r.stderr


def test_lint_clean_with_the_waivers(package):
    command, env = find_verilator()
    r = subprocess.run(command + ["--lint-only", "-Wall", "small.vlt", "small.v"],
                       cwd=package, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert set(LINT_WAIVERS) <= set((package / "small.vlt").read_text().split())


def test_testbench_passes_under_verilator(package):
    assert run_exported(package, "verilator") == "PASS: 40 samples equal to the golden model"
    assert not (package / "obj_dir").exists()


@needs_iverilog
def test_testbench_passes_under_icarus_and_catches_a_wrong_result(package, tmp_path):
    assert run_exported(package, "iverilog") == "PASS: 40 samples equal to the golden model"
    broken = tmp_path / "broken"
    shutil.copytree(package, broken)
    lines = (broken / "small_out.hex").read_text().split()
    lines[7] = f"{int(lines[7], 16) ^ 0b100:0{len(lines[7])}x}"
    (broken / "small_out.hex").write_text("\n".join(lines) + "\n")
    with pytest.raises(ClockpropError, match="MISMATCH sample 7"):
        run_exported(broken, "iverilog")


def test_missing_simulator(package, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ClockpropError, match="Icarus Verilog .* is not installed"):
        run_exported(package, "iverilog")


def test_another_models_folder_is_refused(package, tmp_path):
    rng = np.random.default_rng(9)
    other = random_model(rng, [6, 5, 3], FMT, frac=3)
    shutil.copytree(package, tmp_path / "p")
    before = {p.name: p.read_bytes() for p in (tmp_path / "p").iterdir()}
    with pytest.raises(ClockpropError, match="already holds the export of another model"):
        export(other, tmp_path / "p", "small")
    assert before == {p.name: p.read_bytes() for p in (tmp_path / "p").iterdir()}


def test_testbench_command_errors(tmp_path):
    assert_clean_error(clockprop(tmp_path, "testbench", "nowhere"), "holds no clockprop export")
