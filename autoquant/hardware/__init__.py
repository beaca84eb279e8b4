"""Hardware: GPU specs, measured latency profiles, and the latency of a whole plan.

    model = latency_model_for("h100", shape)  # a measured profile (built in or saved), else the roofline
    lat = plan_latency(shape, plan, model, batch=1, context=4096)
    lat.decode_s, lat.prefill_s, lat.estimated

Measuring a profile needs a GPU and lives in `autoquant.hardware.measure` (imported on demand).
"""

from autoquant.hardware.base import LatencyModel, LayerTime, RestCalibration
from autoquant.hardware.latency import PlanLatency, latency_model_for, local_gpu_name, plan_latency
from autoquant.hardware.profile import HardwareProfile, ProfileModel, saved_profiles
from autoquant.hardware.roofline import RooflineModel
from autoquant.hardware.specs import BUILTIN_SPECS, GPUSpec, get_spec, match_spec

__all__ = [
    "LatencyModel", "LayerTime", "RestCalibration", "PlanLatency", "plan_latency", "latency_model_for",
    "local_gpu_name", "HardwareProfile", "ProfileModel", "saved_profiles", "RooflineModel",
    "BUILTIN_SPECS", "GPUSpec", "get_spec", "match_spec",
]
