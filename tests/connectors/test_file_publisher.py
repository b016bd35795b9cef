from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from matcha.connectors.base import CONNECTORS, PublishItem
from matcha.connectors.file_publisher import FilePublisher
from matcha.errors import ConnectorError

pytestmark = pytest.mark.unit


def item(record_id: str, text: str, **record: Any) -> PublishItem:
    sha = hashlib.sha256(text.encode()).hexdigest()
    return PublishItem("run-1", "publish", record_id, text, sha, {"id": record_id, **record})


def publisher(tmp_path: Path, fmt: Any, path: str = "out/result.txt", **cfg: Any) -> FilePublisher:
    config = FilePublisher.Config(kind="file", path=path, format=fmt, **cfg)
    return FilePublisher("archive", config, base_dir=tmp_path)


ITEMS = [
    item("r1", "First answer.", lang="en", tags=["a", "b"]),
    item("r2", 'Second, with "quotes"\nand a newline.', lang="fr"),
]


def test_kind_is_registered() -> None:
    assert CONNECTORS.get("file") is FilePublisher


def test_jsonl(tmp_path: Path) -> None:
    pub = publisher(tmp_path, "jsonl", fields=["lang", "tags", "missing"])
    pub.publish(ITEMS)
    lines = (tmp_path / "out/result.txt").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert rows[0] == {
        "id": "r1",
        "text": "First answer.",
        "sha256": ITEMS[0].sha256,
        "run_id": "run-1",
        "key": ITEMS[0].key,
        "lang": "en",
        "tags": ["a", "b"],
        "missing": None,
    }
    assert rows[1]["text"] == ITEMS[1].text


def test_jsonl_without_fields_has_base_columns_only(tmp_path: Path) -> None:
    pub = publisher(tmp_path, "jsonl")
    pub.publish(ITEMS[:1])
    row = json.loads((tmp_path / "out/result.txt").read_text())
    assert sorted(row) == ["id", "key", "run_id", "sha256", "text"]


def test_csv_header_written_once(tmp_path: Path) -> None:
    pub = publisher(tmp_path, "csv", fields=["lang", "tags"])
    pub.publish(ITEMS[:1])
    pub.publish(ITEMS[1:])
    with (tmp_path / "out/result.txt").open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["id", "text", "sha256", "run_id", "key", "lang", "tags"]
    assert len(rows) == 3
    assert rows[1][-1] == '["a", "b"]'
    assert rows[2][1] == ITEMS[1].text


def test_csv_refuses_to_append_to_a_file_with_other_columns(tmp_path: Path) -> None:
    publisher(tmp_path, "csv").publish(ITEMS[:1])
    with pytest.raises(ConnectorError, match="Use a new `path`"):
        publisher(tmp_path, "csv", fields=["lang"]).publish(ITEMS[1:])


def test_markdown_sections(tmp_path: Path) -> None:
    pub = publisher(tmp_path, "markdown", fields=["lang"])
    pub.publish(ITEMS)
    text = (tmp_path / "out/result.txt").read_text()
    assert text.startswith(
        f"## r1\n<!-- matcha-key: {ITEMS[0].key} -->\n\n- **lang**: en\n\nFirst answer.\n\n"
    )
    assert f"## r2\n<!-- matcha-key: {ITEMS[1].key} -->\n" in text
    assert text.count("## ") == 2


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "markdown"])
def test_already_published_after_simulated_crash(tmp_path: Path, fmt: str) -> None:
    # First attempt: the file was written, then the process died before the ledger was updated.
    first = publisher(tmp_path, fmt)
    assert first.already_published(ITEMS) == set()  # no file yet
    first.publish(ITEMS[:1])
    first.close()

    # Resume: a fresh publisher sees r1 in the file and only r2 is sent.
    resumed = publisher(tmp_path, fmt)
    done = resumed.already_published(ITEMS)
    assert done == {ITEMS[0].key}
    resumed.publish([i for i in ITEMS if i.key not in done])
    assert resumed.already_published(ITEMS) == {i.key for i in ITEMS}
    text = (tmp_path / "out/result.txt").read_text()
    assert text.count(ITEMS[0].key) == 1


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_torn_last_line_is_ignored_and_not_glued_to(tmp_path: Path, fmt: str) -> None:
    pub = publisher(tmp_path, fmt)
    pub.publish(ITEMS[:1])
    out = tmp_path / "out/result.txt"
    with out.open("a") as fh:
        fh.write('{"id": "r2", "te' if fmt == "jsonl" else "r2,partial")  # crash mid-write
    assert pub.already_published(ITEMS) == {ITEMS[0].key}
    pub.publish(ITEMS[1:])
    assert pub.already_published(ITEMS) == {i.key for i in ITEMS}


def test_markdown_key_in_text_does_not_count(tmp_path: Path) -> None:
    sneaky = item("r3", f"quoted:\n<!-- matcha-key: {ITEMS[0].key} -->\n")
    pub = publisher(tmp_path, "markdown")
    pub.publish([sneaky])
    assert pub.already_published(ITEMS) == set()


def test_empty_publish_creates_nothing(tmp_path: Path) -> None:
    publisher(tmp_path, "jsonl").publish([])
    assert not (tmp_path / "out").exists()


def test_unwritable_path_raises_connector_error(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file, not a directory")
    with pytest.raises(ConnectorError, match=r"Publisher 'archive': cannot write .*connectors/archive.yaml"):
        publisher(tmp_path, "jsonl").publish(ITEMS)


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        ({"format": "xml"}, "format"),
        ({"fields": ["text"]}, r"\['text'\] are always written"),
        ({"fields": ["a", "a"]}, "only once"),
        ({"mode": "w"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_config(cfg: dict[str, Any], match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        FilePublisher.Config(kind="file", path="x", **cfg)


def test_config_schema_has_descriptions() -> None:
    props = FilePublisher.Config.model_json_schema()["properties"]
    assert all(p.get("description") for p in props.values()), props
