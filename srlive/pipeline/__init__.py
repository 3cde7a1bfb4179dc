"""The live streaming pipeline: ring buffer, inference worker, latency accounting, metrics."""

from srlive.pipeline.latency import LatencyTracker, RollingPercentiles
from srlive.pipeline.ring import SetRing, Slot
from srlive.pipeline.stream import Pipeline, PipelineEvents, SRResult
from srlive.pipeline.worker import InferenceWorker

__all__ = [
    "InferenceWorker",
    "LatencyTracker",
    "Pipeline",
    "PipelineEvents",
    "RollingPercentiles",
    "SRResult",
    "SetRing",
    "Slot",
]
