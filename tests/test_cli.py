"""The CLI's contract: --help, exit codes, one-line errors, JSON output."""

import json
import subprocess
import sys

import pytest

from autoquant.cli import main


def run(args, capsys):
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_lists_the_commands(capsys):
    code, out, _ = run(["--help"], capsys)
    assert code == 0
    for command in ("search", "profile", "estimate", "evaluate", "hardware"):
        assert command in out


def test_estimate_json_on_a_config_only_llama2_7b(tmp_path, capsys):
    from test_memory import LLAMA2_7B

    (tmp_path / "config.json").write_text(json.dumps(LLAMA2_7B))
    code, out, _ = run(["estimate", "--model", str(tmp_path), "--plan", "int4-g128-asym", "--json"], capsys)
    assert code == 0
    d = json.loads(out)
    assert {"weights_bytes", "kv_cache_bytes", "total_bytes"} <= d.keys()
    assert d["kv_cache_bytes"] == 2 * 2**30
    assert d["total_bytes"] > d["weights_bytes"] > 3e9


def test_estimate_latency_by_runtime_from_the_built_in_h100_profile(capsys):
    """The built-in H100 profile of Llama-3-8B measured the graphs rest only: eager says estimated."""
    got = {}
    for runtime in ("graphs", "eager"):
        code, out, _ = run(["estimate", "--model", "bench/configs/llama-3-8b", "--plan", "int4-g128-asym",
                            "--hardware", "h100", "--runtime", runtime, "--json"], capsys)
        assert code == 0
        got[runtime] = json.loads(out)
        assert got[runtime]["runtime"] == runtime and runtime in got[runtime]["latency_source"]
    assert got["graphs"]["latency_estimated"] is False and got["eager"]["latency_estimated"] is True
    assert got["graphs"]["total_bytes"] == got["eager"]["total_bytes"]  # memory does not depend on the runtime
    assert 0 < got["graphs"]["decode_s"] < got["eager"]["decode_s"]


@pytest.mark.parametrize(
    "args,match",
    [(["estimate", "--plan", "int5"], "unknown format"),
     (["estimate", "--model", "./nope"], "neither an existing path"),
     (["estimate", "--runtime", "vllm"], "runtime must be one of graphs, eager"),
     (["estimate", "--model", "missing.gguf"], "not found"),
     (["estimate", "--plan", "missing-plan.json"], "plan file not found"),
     (["estimate", "--batch", "0"], "at least 1"),
     (["estimate", "--quantizer", "hqq"], "--quantizer: unknown quantizer"),
     (["estimate", "--plan", "fp16", "--quantizer", "gptq"], "integer formats"),
     (["export", "--plan", "p.json", "--out", "x", "--quantizer", "awq"], "--quantizer applies to a uniform plan")],
)
def test_bad_input_exits_2_with_one_line(args, match, capsys):
    code, _, err = run(args, capsys)
    assert code == 2
    assert match in err and err.count("\n") == 1 and err.startswith("autoquant: error:")


def test_the_quantizer_changes_codes_not_bytes(capsys):
    sizes = []
    for q in ("rtn", "gptq", "awq"):
        code, out, _ = run(["estimate", "--plan", "int4-g128-asym", "--quantizer", q, "--json"], capsys)
        assert code == 0
        sizes.append(json.loads(out)["weights_bytes"])
    assert len(set(sizes)) == 1


def test_usage_errors_exit_2(capsys):
    code, _, err = run(["estimate", "--batch", "many"], capsys)
    assert code == 2
    # a bad --quantizers fails in the request's first step, before any profiling: one line
    code, _, err = run(["search", "--budget", "1GB", "--quantizers", "rtn,hqq"], capsys)
    assert code == 2 and "--quantizers: unknown quantizer 'hqq'" in err and len(err.strip().splitlines()) == 1


def test_console_script_runs_as_a_process(tmp_path):
    from test_memory import LLAMA2_7B

    (tmp_path / "config.json").write_text(json.dumps(LLAMA2_7B))
    proc = subprocess.run([sys.executable, "-m", "autoquant", "estimate", "--model", str(tmp_path), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert abs(json.loads(proc.stdout)["weights_bytes"] / 13.48e9 - 1) < 0.01
    bad = subprocess.run([sys.executable, "-m", "autoquant", "estimate", "--plan", "int4-g100-sym"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_ctrl_c_says_work_is_cached_and_exits_130(capsys, monkeypatch):
    import autoquant.cli.estimate as estimate_cmd

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(estimate_cmd, "resolve_model", interrupted)
    code, _, err = run(["estimate"], capsys)
    assert code == 130 and "interrupted" in err and "resume" in err
