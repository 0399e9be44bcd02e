"""Write the gateware of a model as a package a user takes away.

``export(model, out_dir, name, ...)`` writes into ``out_dir``:

- ``<name>.v`` and ``<name>.il``: the :class:`~clockprop.hw.pipeline.Pipeline`, top module
  ``<name>_<hash>`` (:func:`module_name`: the hash covers the weights and the build options,
  so two exports can be compiled together), without source attributes (no paths of the
  machine that built it);
- ``<name>.vlt``: the Verilator lint waivers for the warning classes the generated Verilog
  still has (:data:`LINT_WAIVERS`, each with its reason); ``verilator --lint-only -Wall
  <name>.vlt <name>.v`` is clean;
- ``tb_<name>.v`` with ``<name>_in.hex`` and ``<name>_out.hex``: a self-checking testbench
  (Icarus Verilog and Verilator) that streams the vectors with random valid/ready stalls
  and compares every result with the golden model's, printing ``PASS`` or ``FAIL``;
- ``README.md`` (ports, widths, latency, throughput, number format, how to instantiate and
  test) and ``manifest.json`` (the same, with every file's SHA-256).

Every text is generated before any file is written, each file is written atomically, and a
folder that holds another model's export is refused.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
from amaranth.back import rtlil, verilog

from ..core.errors import ClockpropError
from ..core.fileio import write_atomic
from ..core.words import pack
from .pipeline import Pipeline, check_fold, layer_mappings

__all__ = ["export", "module_name", "LINT_WAIVERS", "MANIFEST_FORMAT"]

MANIFEST_FORMAT = "clockprop-export"
MANIFEST_VERSION = 1

# Warning classes of `verilator -Wall` on Amaranth's Verilog (written by yosys), waived in
# the exported <name>.vlt; every other class stays on.
LINT_WAIVERS = {
    "WIDTHEXPAND": "yosys writes operands narrower than the operation and lets Verilog's "
                   "rules zero- or sign-extend them, which is the intended arithmetic",
    "UNUSEDSIGNAL": "intermediate nets of the netlist of which only some bits are read",
    "PROCASSINIT": "registers carry their reset value as an initial value as well",
    "DECLFILENAME": "the file is named after the model, the module after the model and hash",
}


def module_name(model, name, options):
    """The top module's name: ``name`` and 8 hex digits of the model and the options."""
    text = json.dumps({"model": model.digest(), "options": options}, sort_keys=True)
    return f"{name}_{hashlib.sha256(text.encode()).hexdigest()[:8]}"


def _check_folder(out_dir, digest):
    manifest = Path(out_dir) / "manifest.json"
    if not manifest.exists():
        return
    try:
        other = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError):
        other = {}
    if other.get("format") != MANIFEST_FORMAT or other.get("model_sha256") != digest:
        raise ClockpropError(f"{out_dir} already holds the export of another model "
                             f"({other.get('model', 'unknown')}); export into another "
                             f"folder (--out) or remove it first")


def _ports(pipeline, model):
    """The top's ports with their widths and meanings (Amaranth's flattened names)."""
    o = pipeline.o.payload.shape()
    cls, logits = o["cls"], o["logits"]
    a = model.fmt.act_bits
    return [
        ("clk", "input", 1, "clock; every register is on its rising edge"),
        ("rst", "input", 1, "synchronous reset, active high"),
        ("i__valid", "input", 1, "a sample is offered"),
        ("i__ready", "output", 1, "the pipeline takes it (a transfer: valid and ready high "
                                  "at a rising edge)"),
        ("i__payload", "input", model.n_inputs * a,
         f"{model.n_inputs} unsigned {a}-bit activations, input k at bits [{a}k +: {a}]"),
        ("o__valid", "output", 1, "a result is offered"),
        ("o__ready", "input", 1, "the consumer takes it"),
        ("o__payload", "output", o.size,
         f"bits [{cls.offset} +: {cls.width}]: the class (argmax, the lowest index on a tie); "
         f"then {model.n_classes} signed {logits.shape.elem_shape.width}-bit logits, logit c "
         f"at bits [{logits.offset} + {logits.shape.elem_shape.width}c +: "
         f"{logits.shape.elem_shape.width}]"),
    ]


def _payloads(model, pipeline, inputs):
    """The testbench vectors: packed input and expected output words (golden model)."""
    o = pipeline.o.payload.shape()
    width = o["logits"].shape.elem_shape.width
    logits = model.forward(inputs)
    classes = np.argmax(logits, axis=1)
    words_in = [pack(row, model.fmt.act_bits) for row in inputs]
    words_out = [(int(c) << o["cls"].offset) | (pack(row, width) << o["logits"].offset)
                 for c, row in zip(classes, logits)]
    return words_in, words_out


def _hex(words, width):
    digits = max(1, (width + 3) // 4)
    return "".join(f"{w:0{digits}x}\n" for w in words)


_TESTBENCH = """\
// Self-checking testbench of @TOP@, written by clockprop export. It streams the
// @N@ input vectors of @NAME@_in.hex through the pipeline, with random valid/ready stalls
// (parameter STALLS = 0 turns them off), and compares every result with @NAME@_out.hex,
// the integer golden model's. It prints PASS or FAIL and finishes.
//   with Icarus Verilog: iverilog -g2012 -o tb tb_@NAME@.v @NAME@.v && vvp tb
//   with Verilator 5: verilator --binary --timing -Wno-fatal -CFLAGS -std=c++20
//       --top-module tb_@NAME@ tb_@NAME@.v @NAME@.v && obj_dir/Vtb_@NAME@
`timescale 1ns / 1ps
module tb_@NAME@;
  parameter STALLS = 1;
  localparam N = @N@, W_IN = @W_IN@, W_OUT = @W_OUT@, TIMEOUT = @TIMEOUT@;

  reg clk = 1'b0, rst = 1'b1;
  reg i_valid = 1'b0, o_ready = 1'b0;
  reg [W_IN-1:0] i_payload = {W_IN{1'b0}};
  wire i_ready, o_valid;
  wire [W_OUT-1:0] o_payload;
  reg [W_IN-1:0] vectors_in [0:N-1];
  reg [W_OUT-1:0] vectors_out [0:N-1];
  integer sent = 0, received = 0, errors = 0, cycles = 0;
  reg taken = 1'b0;

  @TOP@ dut (
    .clk(clk), .rst(rst),
    .i__valid(i_valid), .i__ready(i_ready), .i__payload(i_payload),
    .o__valid(o_valid), .o__ready(o_ready), .o__payload(o_payload));

  always #5 clk = ~clk;

  initial begin
    $readmemh("@NAME@_in.hex", vectors_in);
    $readmemh("@NAME@_out.hex", vectors_out);
    repeat (3) @(posedge clk);
    rst <= 1'b0;
  end

  // A transfer happens at a rising edge with valid and ready high; the testbench changes
  // what it offers on the falling edge after.
  always @(posedge clk) begin
    taken <= i_valid && i_ready;
    if (!rst) cycles = cycles + 1;
    if (!rst && o_valid && o_ready) begin
      if (o_payload !== vectors_out[received]) begin
        errors = errors + 1;
        if (errors <= 10)
          $display("MISMATCH sample %0d: got %h, golden model %h", received, o_payload,
                   vectors_out[received]);
      end
      received = received + 1;
      if (received == N) begin
        if (errors == 0) $display("PASS: %0d samples equal to the golden model", N);
        else $display("FAIL: %0d of %0d samples differ from the golden model", errors, N);
        $finish;
      end
    end
    if (cycles > TIMEOUT) begin
      $display("FAIL: timeout, %0d of %0d results after %0d clocks", received, N, cycles);
      $finish;
    end
  end

  always @(negedge clk) begin
    if (!rst) begin
      if (taken) sent = sent + 1;
      i_valid = (sent < N) && (!STALLS || ($random & 3) != 0);
      if (sent < N) i_payload = vectors_in[sent];
      o_ready = !STALLS || ($random & 3) != 0;
    end
  end
endmodule
"""


def _testbench(name, top, n, w_in, w_out, latency):
    subst = {"@NAME@": name, "@TOP@": top, "@N@": str(n), "@W_IN@": str(w_in),
             "@W_OUT@": str(w_out), "@TIMEOUT@": str(8 * n + 16 * latency + 1000)}
    text = _TESTBENCH
    for key, value in subst.items():
        text = text.replace(key, value)
    return text


def _lint_config(name):
    lines = ["`verilator_config",
             f"// Lint waivers for {name}.v, the Verilog that Amaranth (yosys) wrote: pass this",
             f"// file before {name}.v to a lint run with -Wall (see README.md)."]
    for rule, why in LINT_WAIVERS.items():
        lines += [f"// {rule}: {why}", f'lint_off -rule {rule} -file "*{name}.v"']
    return "\n".join(lines) + "\n"


def _readme(m):
    port_rows = "\n".join(f"| `{p['name']}` | {p['direction']} | {p['width']} | "
                          f"{p['description']} |" for p in m["ports"])
    fmt = m["number_format"]
    name, top = m["name"], m["module"]
    tb = (f"\n## Testbench\n\n`tb_{name}.v` streams the {m['vectors']} vectors of "
          f"`{name}_in.hex` with random valid/ready stalls and checks every result against "
          f"`{name}_out.hex` (the integer golden model):\n\n```sh\n"
          f"iverilog -g2012 -o tb tb_{name}.v {name}.v && vvp tb\n"
          f"verilator --binary --timing -Wno-fatal -CFLAGS -std=c++20 --top-module tb_{name} "
          f"tb_{name}.v {name}.v && obj_dir/Vtb_{name}\n```\n\n(or `clockprop testbench "
          f"<this folder>`, which runs both and writes nothing here). "
          f"It prints `PASS: ...` or `FAIL: ...`.\n" if m["vectors"] else "")
    waivers = "\n".join(f"- `{k}`: {v}" for k, v in LINT_WAIVERS.items())
    return f"""# {name}: clockprop gateware

Module `{top}` in `{name}.v` (Verilog) and `{name}.il` (RTLIL), generated by clockprop from
the model `{m['model']}` (model SHA-256 `{m['model_sha256'][:16]}`).

- network: {' -> '.join(map(str, m['shape']))}, layers mapped as {', '.join(m['mappings'])}
- throughput: {m['samples_per_clock']:g} sample(s) per clock; latency {m['latency_cycles']}
  clocks from a sample's transfer to its result's
- number format: inputs and activations unsigned {fmt['act_bits']}-bit (code k means
  k / {2 ** fmt['act_bits'] - 1}), {fmt['weight_bits']}-bit weights, fraction bits per layer
  {fmt['fracs']}; the logits are exact integers (the golden model's)
- options: {json.dumps(m['options'])}

## Ports

Both streams follow the valid/ready handshake of `amaranth.lib.stream`: a transfer happens
at a rising clock edge where valid and ready are both high; results come out in order.

| port | direction | width | meaning |
|---|---|---|---|
{port_rows}

## Instantiate

```verilog
{top} classifier (
  .clk(clk), .rst(rst),
  .i__valid(sample_valid), .i__ready(sample_ready), .i__payload(sample),
  .o__valid(result_valid), .o__ready(result_ready), .o__payload(result));
```
{tb}
## Lint

`verilator --lint-only -Wall {name}.vlt {name}.v` is clean: `{name}.vlt` waives, for this file
only, the warning classes of the generated netlist:

{waivers}

`manifest.json` holds all of the above and each file's SHA-256.
"""


def export(model, out_dir, name, *, register_every=0, fold=None, vectors=None):
    """Write the export package of ``model`` into ``out_dir`` (see the module); the paths.

    ``vectors`` (integer inputs [N, n_inputs], e.g. the test split) become the testbench's
    vectors; None writes no testbench."""
    fold = check_fold(model, fold)
    mappings = layer_mappings(model, fold)
    options = {"register_every": register_every, "fold": fold, "mappings": mappings}
    digest = model.digest()
    _check_folder(out_dir, digest)                    # before anything is elaborated
    top = module_name(model, name, options)
    pipeline = Pipeline(model, register_every=register_every, fold=fold)
    texts = {f"{name}.il": rtlil.convert(pipeline, name=top, emit_src=False),
             f"{name}.v": verilog.convert(
                 Pipeline(model, register_every=register_every, fold=fold), name=top,
                 emit_src=False),
             f"{name}.vlt": _lint_config(name)}
    ports = _ports(pipeline, model)
    n = 0
    if vectors is not None and len(vectors):
        inputs = model.check_inputs(vectors)
        n = len(inputs)
        words_in, words_out = _payloads(model, pipeline, inputs)
        w_in, w_out = ports[4][2], ports[7][2]
        texts[f"{name}_in.hex"] = _hex(words_in, w_in)
        texts[f"{name}_out.hex"] = _hex(words_out, w_out)
        texts[f"tb_{name}.v"] = _testbench(name, top, n, w_in, w_out, pipeline.latency)
    manifest = {
        "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "name": name, "module": top,
        "model": model.meta.get("name", name), "model_sha256": digest, "shape": model.shape,
        "mappings": mappings, "options": options,
        "samples_per_clock": 1 / pipeline.interval, "latency_cycles": pipeline.latency,
        "number_format": {"act_bits": model.fmt.act_bits,
                          "weight_bits": model.fmt.weight_bits,
                          "fracs": [layer.frac for layer in model.layers]},
        "ports": [{"name": p, "direction": d, "width": w, "description": t}
                  for p, d, w, t in ports],
        "vectors": n, "lint_waivers": list(LINT_WAIVERS),
    }
    texts["README.md"] = _readme(manifest)
    manifest["files"] = {f: hashlib.sha256(t.encode()).hexdigest() for f, t in texts.items()}
    texts["manifest.json"] = json.dumps(manifest, indent=1) + "\n"
    paths = []
    for filename, text in texts.items():
        path = Path(out_dir) / filename
        write_atomic(path, text)
        paths.append(path)
    return paths
