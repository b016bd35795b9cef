from __future__ import annotations

import csv
import errno
import hashlib
import io
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from matcha.connectors.base import CONNECTORS, PublishItem
from matcha.connectors.file_publisher import BASE_COLUMNS, FilePublisher, state_path
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


# -- torn appends: a reader never sees a partial record once the run resumed -----------------------
def parsed_keys(path: Path, fmt: str) -> list[str]:
    """Keys of every record in the file, failing on anything that is not a whole record."""
    text = path.read_text(encoding="utf-8")
    if fmt == "jsonl":
        assert text.endswith("\n")
        return [json.loads(line)["key"] for line in text.splitlines()]
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text, newline=""), strict=True))
        assert rows[0] == list(BASE_COLUMNS) and all(len(r) == len(BASE_COLUMNS) for r in rows)
        assert all(len(r[2]) == 64 and len(r[4]) == 64 for r in rows[1:])  # sha256 and key intact
        return [r[4] for r in rows[1:]]
    sections = text.split("## ")[1:]
    assert all(s.endswith("\n\n") for s in sections)
    return [s.split("<!-- matcha-key: ")[1].split(" -->")[0] for s in sections]


def reference(tmp_path: Path, fmt: str, items: list[PublishItem]) -> bytes:
    """The bytes an uninterrupted publish of ``items`` writes."""
    out = tmp_path / "reference/out.txt"
    out.unlink(missing_ok=True)
    state_path(out).unlink(missing_ok=True)
    publisher(tmp_path, fmt, path=str(out)).publish(items)
    return out.read_bytes()


MORE = [*ITEMS, item("r3", "Third, é and ünïcode.\n"), item("r4", "Fourth.")]


def announce(out: Path, end: int) -> None:
    """Record in the sidecar that an append up to ``end`` bytes is in progress, as publish does."""
    state = json.loads(state_path(out).read_text())
    state_path(out).write_text(json.dumps({**state, "end": end}))


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "markdown"])
def test_torn_append_is_cut_before_already_published_scans(tmp_path: Path, fmt: str) -> None:
    pub = publisher(tmp_path, fmt)
    pub.publish(MORE[:1])
    out = tmp_path / "out/result.txt"
    committed = out.read_bytes()
    full = reference(tmp_path, fmt, MORE)
    for cut in (1, (len(full) - len(committed)) // 2, len(full) - len(committed) - 1):
        announce(out, len(full))  # what publish records before it appends
        with out.open("ab") as fh:  # the crashed batch: part of the render of MORE[1:]
            fh.write(full[len(committed):len(committed) + cut])
        # the resume asks first: the torn batch is not there (and no longer in the file)
        assert pub.already_published(MORE) == {MORE[0].key}
        assert out.read_bytes() == committed
    pub.publish(MORE[1:])
    assert out.read_bytes() == full
    assert parsed_keys(out, fmt) == [i.key for i in MORE]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "markdown"])
def test_append_that_fails_midway_is_repaired_by_the_next_publish(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pub = publisher(tmp_path, fmt)
    pub.publish(MORE[:1])
    calls = []
    real_write = os.write

    def failing_write(fd: int, data: Any) -> int:
        calls.append(len(data))
        if len(calls) > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, bytes(data[:7]))  # short writes, as a signal or a full disk gives

    monkeypatch.setattr(os, "write", failing_write)
    with pytest.raises(ConnectorError, match="No space left on device"):
        pub.publish(MORE[1:])
    monkeypatch.undo()
    out = tmp_path / "out/result.txt"
    assert len(out.read_bytes()) > len(reference(tmp_path, fmt, MORE[:1]))  # torn bytes are in the file
    pub.publish(MORE[1:])  # the retry: nothing found by already_published, so all sent again
    assert out.read_bytes() == reference(tmp_path, fmt, MORE)
    assert parsed_keys(out, fmt) == [i.key for i in MORE]


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:3])))
    publisher(tmp_path, "csv").publish(MORE)
    monkeypatch.undo()
    assert (tmp_path / "out/result.txt").read_bytes() == reference(tmp_path, "csv", MORE)


def test_sidecar_records_the_committed_size(tmp_path: Path) -> None:
    publisher(tmp_path, "jsonl").publish(ITEMS)
    out = tmp_path / "out/result.txt"
    state = json.loads(state_path(out).read_text())
    assert state_path(out).name == ".result.txt.matcha-state"
    assert state["size"] == out.stat().st_size
    assert sorted(p.name for p in out.parent.iterdir()) == [".result.txt.matcha-state", "result.txt"]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_file_without_sidecar_is_taken_as_committed(tmp_path: Path, fmt: str) -> None:
    # Written by an older version, which kept no sidecar: nothing is cut, new items start on a fresh line.
    pub = publisher(tmp_path, fmt)
    pub.publish(ITEMS[:1])
    out = tmp_path / "out/result.txt"
    state_path(out).unlink()
    torn = '{"id": "r9", "te' if fmt == "jsonl" else "r9,partial"
    with out.open("a") as fh:
        fh.write(torn)
    assert pub.already_published(ITEMS) == {ITEMS[0].key}
    assert out.read_text().endswith(torn)
    pub.publish(ITEMS[1:])
    assert torn + "\n" in out.read_text()
    assert pub.already_published(ITEMS) == {i.key for i in ITEMS}


def test_a_file_replaced_or_shortened_by_someone_else_is_not_cut(tmp_path: Path) -> None:
    pub = publisher(tmp_path, "jsonl")
    pub.publish(ITEMS[:1])
    out = tmp_path / "out/result.txt"
    other = tmp_path / "out/other.txt"
    other.write_text('{"note": "another file, longer than what matcha committed to the old one"}\n' * 3)
    os.replace(other, out)
    pub.publish(ITEMS[1:])
    lines = out.read_text().splitlines()
    assert len(lines) == 4 and json.loads(lines[-1])["key"] == ITEMS[1].key
    out.write_text("")  # emptied by hand: shorter than the sidecar says
    pub.publish(ITEMS[:1])
    assert parsed_keys(out, "jsonl") == [ITEMS[0].key]


def test_lines_appended_by_another_tool_are_kept(tmp_path: Path) -> None:
    pub = publisher(tmp_path, "jsonl")
    pub.publish(ITEMS[:1])
    out = tmp_path / "out/result.txt"
    with out.open("a") as fh:
        fh.write('{"note": "appended by hand"}\n')
    pub.publish(ITEMS[1:2])
    assert [json.loads(x).get("note") for x in out.read_text().splitlines()] == [None, "appended by hand", None]


def test_a_second_path_to_the_same_file_is_not_cut(tmp_path: Path) -> None:
    pub = publisher(tmp_path, "jsonl")
    pub.publish(ITEMS[:1])
    out = tmp_path / "out/result.txt"
    os.link(out, tmp_path / "out/link.txt")
    other = FilePublisher("other", FilePublisher.Config(kind="file", path="out/link.txt"), base_dir=tmp_path)
    other.publish(MORE[1:2])  # its own sidecar; the first publisher's says 1 item
    pub.publish(MORE[2:3])
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["r1", "r2", "r3"]


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_concurrent_publishers_to_one_file(tmp_path: Path, fmt: str) -> None:
    # Two runs may publish to the same file: the lock keeps the appends and the sidecar in step, so
    # no publisher cuts another's committed items or writes a second csv header.
    batches = [[item(f"t{t}-{b}-{i}", f"text {t} {b} {i}") for i in range(3)] for t in range(4) for b in range(10)]

    def worker(t: int) -> None:
        pub = publisher(tmp_path, fmt)
        for batch in batches[t * 10:(t + 1) * 10]:
            pub.publish(batch)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    out = tmp_path / "out/result.txt"
    assert sorted(parsed_keys(out, fmt)) == sorted(i.key for b in batches for i in b)
    assert json.loads(state_path(out).read_text())["size"] == out.stat().st_size
