"""Embedding throughput: raw fastembed vs Matcha's `embed` step, same texts, model and batch size.

    .venv/bin/python benchmarks/embed_throughput.py [--n 4000] [--batch-size 256] [--repeat 2]

Both sides build the model from the same offline bundle and embed the same unique texts (so
Matcha's cache cannot help it); each side's time includes constructing the model. Matcha's side
is a whole run of a one-step pipeline: reading the records into the run store, the step, writing
vector references and vectors. Prints both rates and the ratio (target: Matcha >= 0.9 x raw).
"""

from __future__ import annotations

import argparse
import tempfile
import time

from matcha import Pipeline
from matcha.ml.fewshot import builtin_sentiment_examples
from matcha.models.bundle import EMBED_MODEL, default_embed_model_dir


def make_texts(n: int) -> list[str]:
    base = [t for t, _ in builtin_sentiment_examples()]
    return [f"{base[i % len(base)]} (ticket {i})" for i in range(n)]


def raw(texts: list[str], batch_size: int) -> float:
    from fastembed import TextEmbedding

    start = time.perf_counter()
    model = TextEmbedding(EMBED_MODEL, specific_model_path=str(default_embed_model_dir()))
    vectors = list(model.embed(texts, batch_size=batch_size))
    assert len(vectors) == len(texts)
    return time.perf_counter() - start


def matcha(texts: list[str], batch_size: int) -> float:
    records = [{"id": str(i), "text": t} for i, t in enumerate(texts)]
    pipeline = Pipeline.from_yaml(
        f"""
name: bench
settings: {{batch_size: {batch_size}}}
models:
  default-embedder: {{provider: fastembed, batch_size: {batch_size}}}
steps:
  - {{id: embed, type: embed}}
""",
        home=tempfile.mkdtemp(prefix="matcha-bench-"),
    )
    start = time.perf_counter()
    run = pipeline.run(records=records)
    elapsed = time.perf_counter() - start
    assert run.status == "succeeded", run.error
    step = {s.step_id: s for s in run.steps()}["embed"]
    assert step.out == len(texts) and step.extra["computed"] == len(texts)
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    texts = make_texts(args.n)
    raw(texts[:64], args.batch_size)  # warm the OS file cache and onnxruntime once
    raw_best = matcha_best = float("inf")
    for _ in range(args.repeat):  # alternate, keep the best of each: the machine is shared and noisy
        raw_best = min(raw_best, raw(texts, args.batch_size))
        matcha_best = min(matcha_best, matcha(texts, args.batch_size))
    raw_rate, matcha_rate = args.n / raw_best, args.n / matcha_best
    print(f"texts: {args.n}, batch size: {args.batch_size}, model: {EMBED_MODEL} (offline int8 bundle)")
    print(f"raw fastembed   : {raw_rate:8.1f} texts/s ({raw_best:.2f} s)")
    print(f"matcha embed    : {matcha_rate:8.1f} texts/s ({matcha_best:.2f} s, whole run incl. run store)")
    print(f"ratio matcha/raw: {matcha_rate / raw_rate:.3f}  (target >= 0.9)")


if __name__ == "__main__":
    main()
