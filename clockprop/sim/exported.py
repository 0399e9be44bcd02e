"""Run the self-checking testbench of an exported package (:mod:`clockprop.hw.export`)
under Icarus Verilog or Verilator, as a user would; nothing is written into the package."""

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..core.errors import ClockpropError
from .verilator import find_verilator

__all__ = ["SIMULATORS", "run_exported"]

SIMULATORS = ("iverilog", "verilator")


def _package(folder):
    folder = Path(folder)
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, json.JSONDecodeError):
        raise ClockpropError(f"{folder} holds no clockprop export (manifest.json missing or "
                             f"unreadable); run 'clockprop export MODEL --out {folder}'") \
            from None
    name = manifest["name"]
    if not manifest.get("vectors") or not (folder / f"tb_{name}.v").exists():
        raise ClockpropError(f"{folder} has no testbench; export with --vectors N (N > 0)")
    return folder, name


def _commands(simulator, name, work):
    if simulator == "iverilog":
        if shutil.which("iverilog") is None or shutil.which("vvp") is None:
            raise ClockpropError("Icarus Verilog (iverilog, vvp) is not installed: "
                                 "apt install iverilog, or --simulator verilator")
        binary = str(work / "tb")
        return ([["iverilog", "-g2012", "-o", binary, f"tb_{name}.v", f"{name}.v"]],
                [["vvp", "-n", binary]], None)
    command, env = find_verilator()
    return ([command + ["--binary", "--timing", "-Wno-fatal", "-CFLAGS", "-std=c++20",
                        "--Mdir", str(work / "obj_dir"), "--top-module", f"tb_{name}",
                        f"tb_{name}.v", f"{name}.v"]],
            [[str(work / "obj_dir" / f"Vtb_{name}")]], env)


def run_exported(folder, simulator, timeout=900):
    """Build and run the package's testbench with ``simulator``; its ``PASS`` line, or raise
    :class:`ClockpropError` with the ``FAIL`` line or the tool's error."""
    if simulator not in SIMULATORS:
        raise ClockpropError(f"simulator must be one of {', '.join(SIMULATORS)}")
    folder, name = _package(folder)
    with tempfile.TemporaryDirectory(prefix="clockprop-tb-") as tmp:
        build, run, env = _commands(simulator, name, Path(tmp))
        for cmd in build:
            r = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, env=env,
                               timeout=timeout)
            if r.returncode:
                tail = (r.stderr or r.stdout).strip().splitlines()[-5:]
                raise ClockpropError(f"{simulator} could not build the testbench of {folder}: "
                                     f"{' / '.join(tail)}")
        out = ""
        for cmd in run:
            out = subprocess.run(cmd, cwd=folder, capture_output=True, text=True,
                                 timeout=timeout).stdout
    lines = out.splitlines()
    passed = next((line for line in lines if line.startswith("PASS")), None)
    if passed is None:
        failed = [line for line in lines if line.startswith(("FAIL", "MISMATCH"))]
        raise ClockpropError(f"the testbench of {folder} failed under {simulator}: "
                             f"{' / '.join(failed[-3:]) or 'no PASS line'}")
    return passed
