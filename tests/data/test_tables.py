"""Text tables: CSV / TSV / JSONL / JSON / Parquet, column detection, skipped rows, errors."""

from __future__ import annotations

import pytest

from tests import helpers
from transferopt.data import TextInputs, load_task_data
from transferopt.errors import ConfigError, DataError

FORMATS = ["csv", "tsv", "jsonl", "json", "parquet"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_single_table_file(tmp_path, fmt):
    path = helpers.write_table(tmp_path / f"intents.{fmt}", helpers.intent_rows(range(10)))
    task = load_task_data(str(path), seed=0)
    assert task.modality == "text"
    assert task.classes == ["food", "music", "weather"]
    assert isinstance(task.train.inputs, TextInputs)
    assert len(task.train) + len(task.val) == 30
    assert task.val.class_counts(3).tolist() == [2, 2, 2]
    # Texts keep their labels.
    for split in (task.train, task.val):
        for text, label in zip(split.inputs.texts, split.labels, strict=True):
            assert text in helpers.INTENTS[task.classes[label]]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_folder_of_split_tables(tmp_path, fmt):
    helpers.write_intent_tables(tmp_path, fmt=fmt)
    task = load_task_data(str(tmp_path))
    assert (len(task.train), len(task.val), len(task.test)) == (18, 6, 6)
    assert task.test.inputs.texts[0] == helpers.INTENTS["food"][8]


def test_split_table_aliases(tmp_path):
    helpers.write_table(tmp_path / "training.csv", helpers.intent_rows(range(0, 6)))
    helpers.write_table(tmp_path / "dev.csv", helpers.intent_rows(range(6, 8)))
    helpers.write_table(tmp_path / "testing.csv", helpers.intent_rows(range(8, 10)))
    task = load_task_data(str(tmp_path))
    assert (len(task.train), len(task.val), len(task.test)) == (18, 6, 6)


def test_split_tables_without_train(tmp_path):
    helpers.write_table(tmp_path / "val.csv", helpers.intent_rows(range(2)))
    with pytest.raises(DataError, match=r"tables for \['val'\] but no train"):
        load_task_data(str(tmp_path))


@pytest.mark.parametrize(
    ("text_name", "label_name"),
    [("utterance", "intent"), ("Sentence", "Category"), ("body", "tag")],
)
def test_columns_are_detected(tmp_path, text_name, label_name):
    rows = [
        {"id": i, label_name: r["label"], text_name: r["text"]} for i, r in enumerate(helpers.intent_rows(range(6)))
    ]
    path = helpers.write_table(tmp_path / "t.csv", rows)
    task = load_task_data(str(path))
    assert task.classes == ["food", "music", "weather"]
    assert set(task.train.inputs.texts) <= {r[text_name] for r in rows}


def test_column_overrides(tmp_path):
    rows = [
        {"text": "x", "label": "y", "message": r["text"], "topic": r["label"]} for r in helpers.intent_rows(range(6))
    ]
    path = helpers.write_table(tmp_path / "t.csv", rows)
    task = load_task_data(str(path), text_col="message", label_col="topic")
    assert task.classes == ["food", "music", "weather"]
    assert set(task.train.inputs.texts) <= {r["message"] for r in rows}


@pytest.mark.parametrize("option", ["text_col", "label_col"])
def test_unknown_column(tmp_path, option):
    path = helpers.write_table(tmp_path / "t.csv", helpers.intent_rows(range(6)))
    flag = "--" + option.replace("_", "-")
    with pytest.raises(ConfigError, match=f"{flag} 'nope' is not a column.*columns: text, label"):
        load_task_data(str(path), **{option: "nope"})


def test_val_table_missing_the_chosen_column(tmp_path):
    helpers.write_table(tmp_path / "train.csv", helpers.intent_rows(range(6)))
    helpers.write_table(
        tmp_path / "val.csv",
        [{"sentence": r["text"], "label": r["label"]} for r in helpers.intent_rows(range(6, 8))],
    )
    with pytest.raises(DataError, match=r"val.csv has no column 'text'"):
        load_task_data(str(tmp_path))


def test_test_table_with_unseen_label(tmp_path):
    helpers.write_table(tmp_path / "train.csv", helpers.intent_rows(range(6)))
    helpers.write_table(tmp_path / "test.csv", [{"text": "hello", "label": "greeting"}])
    with pytest.raises(DataError, match="test split has label.*greeting"):
        load_task_data(str(tmp_path))


def test_undetectable_columns(tmp_path):
    path = helpers.write_table(tmp_path / "t.csv", [{"only": r["text"]} for r in helpers.intent_rows(range(4))])
    with pytest.raises(DataError, match="cannot tell the text and label columns"):
        load_task_data(str(path))


def test_empty_text_rows_are_skipped_and_listed(tmp_path):
    path = tmp_path / "t.csv"
    lines = ["text,label"] + [f"{r['text']},{r['label']}" for r in helpers.intent_rows(range(4))]
    lines.insert(3, ",music")  # file line 4: empty text
    lines.insert(6, "   ,food")  # file line 7: blank text
    lines.insert(8, "some text,")  # file line 9: empty label
    path.write_text("\n".join(lines) + "\n")
    task = load_task_data(str(path))
    assert task.skipped == ["t.csv:4", "t.csv:7", "t.csv:9"]
    assert len(task.train) + len(task.val) == 12
    assert all(t.strip() for t in task.train.inputs.texts + task.val.inputs.texts)


def test_skipped_jsonl_rows_name_the_right_line(tmp_path):
    rows = helpers.intent_rows(range(4))
    rows[1] = {"text": "", "label": rows[1]["label"]}  # line 2 of the file
    path = helpers.write_table(tmp_path / "x.jsonl", rows)
    task = load_task_data(str(path))
    assert task.skipped == ["x.jsonl:2"]


def test_all_rows_empty(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\n,a\n  ,b\n")
    with pytest.raises(DataError, match="every row has an empty text or label"):
        load_task_data(str(path))


def test_header_only_table(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("text,label\n")
    with pytest.raises(DataError, match="has no rows"):
        load_task_data(str(path))


def test_unreadable_table(tmp_path):
    path = tmp_path / "t.parquet"
    path.write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match="cannot read table"):
        load_task_data(str(path))


def test_unsupported_file(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"x")
    with pytest.raises(DataError, match="unsupported data file"):
        load_task_data(str(path))


def test_one_class_table(tmp_path):
    path = helpers.write_table(tmp_path / "t.csv", [{"text": f"text {i}", "label": "only"} for i in range(5)])
    with pytest.raises(DataError, match="only one class"):
        load_task_data(str(path))


def test_single_example_class_table(tmp_path):
    rows = helpers.intent_rows(range(5)) + [{"text": "hello there", "label": "greeting"}]
    path = helpers.write_table(tmp_path / "t.csv", rows)
    with pytest.raises(DataError, match="class 'greeting' has a single example"):
        load_task_data(str(path))


def test_integer_labels(tmp_path):
    rows = [
        {"text": r["text"], "label": ["food", "music", "weather"].index(r["label"])}
        for r in helpers.intent_rows(range(6))
    ]
    path = helpers.write_table(tmp_path / "t.csv", rows)
    assert load_task_data(str(path)).classes == ["0", "1", "2"]


def test_integer_labels_with_an_empty_cell(tmp_path):
    rows = [
        {"text": r["text"], "label": ["food", "music", "weather"].index(r["label"])}
        for r in helpers.intent_rows(range(6))
    ]
    lines = ["text,label"] + [f"{r['text']},{r['label']}" for r in rows] + ["a text without label,"]
    (tmp_path / "train.csv").write_text("\n".join(lines) + "\n")
    helpers.write_table(tmp_path / "test.csv", rows[:3])
    task = load_task_data(str(tmp_path))
    assert task.classes == ["0", "1", "2"]
    assert task.skipped == ["train.csv:20"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_label_codes_keep_their_spelling(tmp_path, fmt):
    rows = [{"text": f"text number {i}", "label": "007" if i % 2 else "042"} for i in range(10)]
    path = helpers.write_table(tmp_path / f"t.{fmt}", rows)
    assert load_task_data(str(path)).classes == ["007", "042"]
