"""The public API is small and explicit; everything in __all__ exists and nothing else is promised."""

from __future__ import annotations

import subprocess
import sys

import pytest

import matcha

pytestmark = pytest.mark.unit


def test_all_is_explicit_and_importable() -> None:
    assert sorted(matcha.__all__) == matcha.__all__
    for name in matcha.__all__:
        assert hasattr(matcha, name), name
    assert {"Pipeline", "Run", "PipelineError", "MatchaError", "register_step"} <= set(matcha.__all__)


def test_exception_tree() -> None:
    for exc in (matcha.PipelineError, matcha.ConnectorError, matcha.ModelError, matcha.StepError, matcha.RunError):
        assert issubclass(exc, matcha.MatchaError)
    assert issubclass(matcha.EgressDenied, matcha.ConnectorError)
    assert issubclass(matcha.ApprovalError, matcha.RunError)
    assert issubclass(matcha.ModelUnavailable, matcha.ModelError)
    assert issubclass(matcha.VoiceError, matcha.MatchaError)


def test_cli_help_does_not_import_heavy_libraries() -> None:
    code = ("import sys; from matcha.cli.main import app; "
            "heavy = [m for m in ('langgraph', 'fastembed', 'onnxruntime', 'llama_cpp', 'sklearn', 'qdrant_client') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
