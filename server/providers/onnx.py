"""One onnxruntime session on one CPU thread, as our small models want it (Silero VAD,
Smart Turn): their runs are milliseconds, thread hand-off would cost more, and the other
cores are busy with Whisper."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class OnnxUnavailable(RuntimeError):
    """onnxruntime is missing or the model file cannot be loaded."""


def cpu_session(path: Path, *, arena: bool = False) -> Any:
    """An ``InferenceSession`` for ``path`` on one thread, fully optimised, quiet."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise OnnxUnavailable("onnxruntime is not installed") from exc
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.enable_cpu_mem_arena = arena
    opts.log_severity_level = 4
    try:
        return onnxruntime.InferenceSession(
            str(path), providers=["CPUExecutionProvider"], sess_options=opts
        )
    except Exception as exc:  # onnxruntime raises its own exception types
        raise OnnxUnavailable(f"cannot load {path}: {exc}") from exc
