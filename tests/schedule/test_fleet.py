"""Fleet specs: every mistake is one line naming the file and key (exit 2); targets and budgets."""

from __future__ import annotations

import pytest

from autoquant.cli import main
from autoquant.errors import UserError
from autoquant.hardware.specs import BUILTIN_SPECS, get_spec
from autoquant.schedule import expand, parse_fleet

SPEC = {"models": ["default"], "hardware": ["h100", "l4", "rtx4090"], "workloads": [{"batch": 1, "context": 4096}],
        "budgets": [{"memory": "0.82GB"}, {"memory": "0.85GB", "quality": "kl=0.05"}], "space": "default",
        "trials": 300}


def test_the_issue_spec_has_six_targets() -> None:
    fleet = parse_fleet(SPEC, "fleet.yaml")
    targets = expand(fleet)
    assert len(targets) == 6 and len({t.id for t in targets}) == 6
    assert targets[0].id == "default/h100/b1-c4096/memory=0.82GB"
    assert targets[-1].id == "default/rtx4090/b1-c4096/memory=0.85GB,kl=0.05"


def test_memory_may_be_a_share_of_each_gpu() -> None:
    fleet = parse_fleet({**SPEC, "hardware": ["all"], "budgets": [{"memory": "90%"}]}, "f.yaml")
    assert fleet.hardware == tuple(s.name for s in BUILTIN_SPECS)
    b = fleet.budgets[0]
    assert b.memory_for(get_spec("l4").memory_bytes) == int(0.9 * 24e9)
    assert b.memory_for(get_spec("h200").memory_bytes) == int(0.9 * 141e9)


@pytest.mark.parametrize(("change", "needle"), [
    ({"hardware": ["voodoo5"]}, "hardware[0]: unknown GPU 'voodoo5'"),
    ({"budgets": [{"memory": "lots"}]}, "budgets[0].memory: invalid memory budget"),
    ({"budgets": [{"memory": "120%"}]}, "budgets[0].memory: expected a percentage"),
    ({"budgets": [{"memory": "1GB", "quality": "kl=5%"}]}, "budgets[0]: invalid quality budget"),
    ({"budgets": [{"memory": "1GB", "speed": 3}]}, "budgets[0].speed: unknown key"),
    ({"budgets": [{"quality": "kl=0.05"}]}, "budgets[0]: needs a memory budget"),
    ({"workloads": [{"batch": 0, "context": 4096}]}, "workloads[0].batch: expected a whole number of at least 1"),
    ({"trials": "many"}, "trials: expected a whole number"),
    ({"models": ["./nowhere"]}, "models[0]: model not found"),
    ({"space": "nospace"}, "space: search space file not found"),
    ({"gpus": ["h100"]}, "gpus: unknown key"),
])
def test_every_mistake_names_its_key(change, needle) -> None:
    with pytest.raises(UserError) as e:
        parse_fleet({**SPEC, **change}, "fleet.yaml")
    assert str(e.value).startswith("fleet spec fleet.yaml: ") and needle in str(e.value)


def test_missing_keys_and_bad_yaml_exit_2_in_one_line(tmp_path, capsys) -> None:
    spec = tmp_path / "fleet.yaml"
    spec.write_text("models: [default]\nhardware: [h100]\n")
    assert main(["schedule", "status", str(spec)]) == 2
    err = capsys.readouterr().err
    assert "budgets: missing" in err and len(err.strip().splitlines()) == 1
    spec.write_text("models: [default\n")
    assert main(["schedule", "run", str(spec)]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    assert main(["schedule", "status", str(tmp_path / "none.yaml")]) == 2
    assert "fleet spec not found" in capsys.readouterr().err
