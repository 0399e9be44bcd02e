"""The command line end to end, and its answers to bad input."""

import json

import pytest

from conftest import assert_clean_error, clockprop

QUICK = ["--set", "train.epochs=3", "--set", "reference.epochs=2"]


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("flow")
    config = cwd / "tiny.toml"
    config.write_text('name = "tiny"\n[train]\nrule = "csb"\nhidden = [12]\n'
                      '[reference]\nrule = "bp"\nhidden = [12]\n')
    result = clockprop(cwd, "flow", "--config", str(config), *QUICK)
    assert result.returncode == 0, result.stderr
    return cwd, result


def test_flow_end_to_end(flow):
    cwd, result = flow
    assert "450/450 samples bit-exact" in result.stderr
    assert (cwd / "gateware/tiny/tiny.v").read_text().count("module tiny_") == 1
    assert (cwd / "gateware/tiny/tiny.il").exists()
    report = json.loads((cwd / "reports/tiny/report.json").read_text())
    g = report["gateware"]
    assert g["samples_equal"] == g["n_samples"] == 450
    assert g["logits_equal"] == g["n_logits"] == 4500
    assert g["test_acc"] == report["integer"]["test_acc"]
    assert g["test_acc"] > 0.5 and report["float"]["test_acc"] > 0.5
    assert report["reference"]["rule"] == "bp"
    assert g["latency_cycles"] == 6 and g["samples_per_clock"] == 1   # 2 layers, argmax 4
    assert report["resources"]["lut_estimate"] > 0
    for png in ("confusion.png", "learning_curve.png"):
        assert (cwd / "reports/tiny" / png).read_bytes()[:4] == b"\x89PNG"
    assert "gateware" in (cwd / "reports/tiny/report.md").read_text()


def test_steps_by_model_name(flow):
    cwd, _ = flow
    result = clockprop(cwd, "sim", "tiny", "--limit", "20", "--register-every", "1")
    assert result.returncode == 0, result.stderr
    assert "20/20 samples bit-exact" in result.stderr


@pytest.mark.parametrize("args, needles", [
    (["train", "--set", "train.rule=magic"], ["rule", "magic"]),
    (["train", "--set", "dataset=imagenet"], ["unknown dataset", "digits"]),
    (["train", "--set", "format.act_bits=99"], ["act_bits", "[1, 8]"]),
    (["train", "--set", "train.epochs=-1"], ["epochs"]),
    (["train", "--set", "colour=blue"], ["unknown setting", "colour"]),
    (["train", "--set", "nonsense"], ["key=value"]),
    (["train", "--config", "missing.toml"], ["missing.toml", "does not exist"]),
    (["train", "--bogus"], ["unrecognized arguments"]),
    (["sim", "nothing-here"], ["does not exist"]),
])
def test_bad_input(tmp_path, args, needles):
    result = clockprop(tmp_path, *args)
    assert_clean_error(result, *needles)
    assert not (tmp_path / "build").exists()             # nothing half-written


def test_bad_model_files(flow, tmp_path):
    cwd, _ = flow
    text = (cwd / "build/tiny/model.json").read_text()
    cases = {"truncated.json": (text[: len(text) // 2], "truncated"),
             "edited.json": (text.replace('"frac":', '"frac": ', 1).replace(
                 '"bias":[', '"bias":[1', 1), "checksum"),
             "future.json": (text.replace('"version":1', '"version":99', 1), "newer")}
    for name, (content, needle) in cases.items():
        (tmp_path / name).write_text(content)
        for command in ("export", "sim", "report"):
            result = clockprop(tmp_path, command, name)
            assert_clean_error(result, needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(cases)


def test_other_data_is_refused(flow, tmp_path):
    """A model whose data is not found again (here: its split seed edited) is refused by sim,
    not simulated on whatever the dataset now gives."""
    from clockprop.models.intmodel import IntModel
    cwd, _ = flow
    model = IntModel.load(cwd / "build/tiny/model.json")
    assert len(model.meta["data_sha256"]) == 64
    model.meta["split_seed"] = 1
    model.save(tmp_path / "model.json")
    result = clockprop(cwd, "sim", str(tmp_path / "model.json"), "--limit", "5")
    assert_clean_error(result, "not the data the model was trained and tested on",
                       "split seed 0", "split seed 1")
    assert not (tmp_path / "sim.json").exists()


def test_report_refuses_a_sim_of_other_data(flow, tmp_path):
    import shutil
    cwd, _ = flow
    shutil.copy(cwd / "build/tiny/model.json", tmp_path / "model.json")
    sim = json.loads((cwd / "build/tiny/sim.json").read_text())
    sim["data_sha256"] = "0" * 64
    (tmp_path / "sim.json").write_text(json.dumps(sim))
    assert_clean_error(clockprop(cwd, "report", str(tmp_path / "model.json")),
                       "simulated on other data")
