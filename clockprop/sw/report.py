"""The model report: float vs integer vs gateware accuracy, cost, latency, throughput.

``reports/<name>/report.json`` holds every number, ``report.md`` the same for people, and
``confusion.png`` / ``learning_curve.png`` the pictures.
"""

import io
import json

import numpy as np

from ..core.fileio import write_atomic

__all__ = ["confusion_matrix", "write_report"]


def confusion_matrix(labels, predicted, n_classes):
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(labels), np.asarray(predicted)), 1)
    return cm


def _pct(x):
    return "n/a" if x is None else f"{100 * x:.2f}%"


def _png(fig):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    return buf.getvalue()


def _plots(summary, cm):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4.4))
    ax.imshow(cm, cmap="Blues")
    for (r, c), v in np.ndenumerate(cm):
        ax.text(c, r, str(v), ha="center", va="center", fontsize=7,
                color="white" if v > cm.max() / 2 else "black")
    ax.set_xlabel("predicted (gateware)")
    ax.set_ylabel("true class")
    ax.set_xticks(range(len(cm)))
    ax.set_yticks(range(len(cm)))
    ax.set_title(f"{summary['name']}: gateware confusion matrix, "
                 f"{_pct(summary['gateware']['test_acc'])}")
    confusion = _png(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    curves = [(summary["train"]["rule"], summary["history"])]
    if summary.get("reference"):
        curves.append((summary["reference"]["rule"] + " (reference)",
                       summary["reference"]["history"]))
    for label, history in curves:
        epochs = [row["epoch"] for row in history]
        ax.plot(epochs, [100 * row["test_acc"] for row in history], label=f"{label}: float test")
        if history and "int_test_acc" in history[0]:
            ax.plot(epochs, [100 * row["int_test_acc"] for row in history], "--",
                    label=f"{label}: integer test")
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(max(0, min(ax.get_ylim()[0], 80)), 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{summary['name']}: learning curve")
    curve = _png(fig)
    plt.close(fig)
    return {"confusion.png": confusion, "learning_curve.png": curve}


def _markdown(s):
    g, r, t = s["gateware"], s["resources"], s["train"]
    lines = [
        f"# clockprop report: {s['name']}",
        "",
        f"- dataset: {s['split']}",
        *([f"- data file: `{s['data']['path']}`, SHA-256 `{s['data']['sha256']}`, scale "
           f"`{s['data']['scale']}`, classes {', '.join(map(str, s['data']['classes']))}"]
          if s.get("data") else []),
        f"- network: {' -> '.join(map(str, s['shape']))} (rule `{t['rule']}`, "
        f"{'quantization-aware' if t.get('qat') else 'float'} training, seed {t['seed']})",
        f"- number format: {s['format']['act_bits']}-bit activations, "
        f"{s['format']['weight_bits']}-bit weights, layer fraction bits {s['fracs']}",
        "",
        "## Accuracy on the test split",
        "",
        "| model | accuracy | where |",
        "|---|---|---|",
        f"| float (`{t['rule']}`) | {_pct(s['float']['test_acc'])} | {s['float']['device']}, "
        f"{s['float']['train_seconds']:.1f} s, {s['float']['samples_per_s']:.0f} samples/s |",
    ]
    if s.get("reference"):
        ref = s["reference"]
        lines.append(f"| float reference (`{ref['rule']}`, {' -> '.join(map(str, ref['shape']))})"
                     f" | {_pct(ref['test_acc'])} | {ref['device']} |")
    lines += [
        f"| integer golden model | {_pct(s['integer']['test_acc'])} | numpy, int64 |",
        f"| gateware | {_pct(g['test_acc'])} | {g['simulator']}, cycle-accurate |",
        "",
        f"Gateware vs golden model: {g['samples_equal']}/{g['n_samples']} samples with every "
        f"logit equal ({_pct(g['samples_equal'] / max(1, g['n_samples']))}), "
        f"{g['logits_equal']}/{g['n_logits']} logits equal. "
        f"Gateware minus float: {100 * (g['test_acc'] - s['float']['test_acc']):+.2f} points.",
        "",
        "## Timing and cost",
        "",
        "| | |",
        "|---|---|",
        f"| throughput | {g['samples_per_clock']:.3g} samples per clock (fold factors "
        f"{g.get('fold')}) |",
        f"| latency | {g['latency_cycles']} clocks ({len(s['shape']) - 1} layer stages + "
        f"argmax) |",
        f"| simulation | {g['cycles']} clocks for {g['n_samples']} samples in "
        f"{g['sim_seconds']:.1f} s ({g['sim_cycles_per_s']:.0f} clocks/s) |",
        f"| weights | {r['weights']} ({r['nonzero_weights']} non-zero, {r['csd_terms']} "
        f"shift-add terms" + (f"; {r['table_entries']} learned table entries"
                              if r.get("table_entries") else "") + ") |",
        f"| estimated logic | {r['lut_estimate']} LUT4, {r['ff_estimate']} FF, "
        f"{r.get('rom_bits', 0)} ROM bits "
        f"(from the elaborated design; synthesis numbers come with `make bitstream`) |",
        *(f"| layer {row['layer']} ({row['shape'][0]} -> {row['shape'][1]}) | "
          f"{row['mapping']}" + (f" ({row['table_bits']} input bits per neuron)"
                                 if "table_bits" in row else "") +
          f": {row['lut']} LUT4, {row['ff']} FF |" for row in r.get("layers", [])),
        "",
        "![confusion matrix](confusion.png) ![learning curve](learning_curve.png)",
        "",
    ]
    return "\n".join(lines)


def write_report(out_dir, summary, labels, predicted):
    """Write report.json, report.md and the PNGs of ``summary`` into ``out_dir``."""
    from pathlib import Path
    out_dir = Path(out_dir)
    cm = confusion_matrix(labels, predicted, summary["n_classes"])
    summary = dict(summary, confusion=cm.tolist())
    files = {"report.json": json.dumps(summary, indent=2) + "\n",
             "report.md": _markdown(summary), **_plots(summary, cm)}
    for name, content in files.items():
        write_atomic(out_dir / name, content)
    return [out_dir / name for name in files]
