"""Sensitivity profiling: what quantizing each layer in each format costs in quality.

The flow, for `autoquant profile` (and `autoquant search`, which profiles first):

    profile.py     profile_sensitivity(): targets from the search space, calibration
                   windows, cache lookup, then the missing work on Ray workers
    executor.py    Ray actors (worker.py), one model each; retries when a worker dies
    statistics.py  one calibration pass: input second moments H, output Fisher diagonals G
    proxy.py       per (layer, format): output error trace(dW H dW^T), normalised
    worker.py      per (layer, format): KL and perplexity change, only that layer quantized
                   (autoquant.quality.QualityMeter)
    sample.py      which pairs to measure when not all of them (CPU)
    cache.py       every finished result appended to disk at once (resume, instant re-run)
    table.py       SensitivityTable: proxies, measured sample, calibration, estimated_kl
    heatmap.py     the table as an image (blocks x roles, one panel per format)
    output.py      save_profile(): sensitivity.json + sensitivity.png in a run directory
"""

from autoquant.sensitivity.output import save_profile
from autoquant.sensitivity.profile import METHOD_VERSION, profile_sensitivity
from autoquant.sensitivity.table import SensitivityEntry, SensitivityTable

__all__ = ["METHOD_VERSION", "SensitivityEntry", "SensitivityTable", "profile_sensitivity", "save_profile"]
