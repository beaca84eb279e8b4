"""gptq and awq plans exported as compressed-tensors on a tiny model: the codes calibration chose
(and awq's folded norms) are what transformers loads, with no autoquant code on the loading side."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from autoquant.apply import apply_plan
from autoquant.export import export_plan
from autoquant.layers import discover_layers
from autoquant.models import load_tokenizer, resolve_model
from autoquant.plan import Plan
from autoquant.quantizers.calibrate import calibration_windows
from tiny_models import save_tiny_model


@pytest.mark.parametrize("quantizer", ["gptq", "awq"])
def test_a_calibrated_plan_round_trips_through_transformers(tmp_path, quantizer):
    src = tmp_path / "tiny"
    save_tiny_model(src)  # with a tokenizer: export calibrates on wikitext-2 validation
    fake = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    plan = Plan.uniform("int4-g32-sym", discover_layers(fake), str(src), quantizer)
    out = export_plan(plan, tmp_path / quantizer, engine="transformers")
    apply_plan(fake, plan, "fake", calibration=calibration_windows(load_tokenizer(resolve_model(str(src)))))
    rtn = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    apply_plan(rtn, Plan.uniform("int4-g32-sym", discover_layers(rtn)))
    hf = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    ids = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got, plain = fake(ids).logits, hf(ids).logits, rtn(ids).logits
    assert torch.allclose(got, want, atol=2e-3, rtol=2e-3), float((got - want).abs().max())
    assert not torch.allclose(got, plain, atol=2e-3, rtol=2e-3)  # not the round-to-nearest codes
    assert Plan.load(out / "autoquant_plan.json").quantizers == plan.quantizers


def test_gguf_refuses_a_calibrated_plan(tmp_path):
    from autoquant.errors import UserError

    src = tmp_path / "tiny"
    save_tiny_model(src)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    plan = Plan.uniform("int8-pc-sym", discover_layers(model), str(src), "gptq")
    with pytest.raises(UserError, match="llama.cpp's own block quantization"):
        export_plan(plan, tmp_path / "out.gguf", engine="llamacpp", fmt="gguf")


def test_export_calibrates_on_the_text_the_plan_records(tmp_path):
    """A searched plan records its --calib text; export calibrates on it (not the default), and
    refuses, in one line, when that text is no longer there as it was."""
    from autoquant.data import calibration_text, evaluation_text
    from autoquant.errors import UserError

    src = tmp_path / "tiny"
    save_tiny_model(src)
    mine = tmp_path / "domain.txt"
    mine.write_text(evaluation_text().text[:40_000])
    text = calibration_text(str(mine))
    model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
    plan = Plan.uniform("int4-g32-sym", discover_layers(model), str(src), "gptq")
    plan.calibration = text.ref
    out = export_plan(plan, tmp_path / "ct", engine="transformers")
    tokenizer = load_tokenizer(resolve_model(str(src)))
    ids = torch.randint(0, 256, (2, 12), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        got = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)(ids).logits
        for windows, same in ((calibration_windows(tokenizer, text), True), (calibration_windows(tokenizer), False)):
            fake = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)
            apply_plan(fake, plan, "fake", calibration=windows)
            assert torch.allclose(got, fake(ids).logits, atol=2e-3, rtol=2e-3) == same
    assert Plan.load(out / "autoquant_plan.json").calibration == text.ref

    mine.write_text(evaluation_text().text[40_000:80_000])
    with pytest.raises(UserError, match="calibrated on .*domain.txt.*not there as it was"):
        export_plan(plan, tmp_path / "again", engine="transformers")
    assert not (tmp_path / "again").exists()  # refused before anything was written
