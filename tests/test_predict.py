"""`agrl predict` end to end, as a subprocess, with a tiny untrained model."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from agrl.models.tiny import build_model, build_tokenizer

RECORDS = [
    {
        "id": 1,
        "query": "red running shoes",
        "product": {"title": "nike pegasus running shoes", "color": "blue"},
    },
    {
        "id": "b",
        "query": "steel kettle 1.5 l",
        "product": {"title": "electric kettle", "price": 24.9},
        "label": 3,
    },
    {
        "id": "c",
        "query": "usb cable",
        "product": {"title": "usb c cable 2 m", "attributes": {"length": "2 m"}},
    },
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny_untrained")
    tokenizer = build_tokenizer([json.dumps(r) for r in RECORDS])
    build_model(tokenizer, hidden=32, layers=1, heads=2, intermediate=64).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _start(*args: str) -> subprocess.Popen:
    # One intra-op thread: on a couple of busy cores more threads make a tiny model far slower.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen(
        [sys.executable, "-m", "agrl.cli", "predict", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    return process.returncode, out, err


@pytest.fixture(scope="module")
def runs(model_dir, tmp_path_factory):
    """The three runs of this module, started together (each spends most of its time importing torch)."""
    tmp = tmp_path_factory.mktemp("predict")
    jsonl = tmp / "records.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    table = tmp / "records.csv"
    with open(table, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "query", "product_title", "product_brand", "product_price"])
        writer.writerow(["p1", "nike shoes", "nike air running shoes", "nike", "59.9"])
        writer.writerow(["p2", "kettle", "steel kettle 1.7 l", "", ""])
    bad = tmp / "bad.jsonl"
    bad.write_text(
        json.dumps(RECORDS[0])
        + "\n"
        + json.dumps({"id": "x", "query": "q", "product": {"title": ""}})
        + "\n",
        encoding="utf-8",
    )
    cases = {"jsonl": jsonl, "csv": table, "bad": bad}
    common = ["--model", str(model_dir), "--max-new-tokens", "8", "--batch-size", "2"]
    processes = {
        name: _start(*common, "--data", str(path), "--out", str(tmp / f"{name}.out.jsonl"))
        for name, path in cases.items()
    }
    results = {name: _finish(p) for name, p in processes.items()}
    return {name: (*results[name], cases[name], tmp / f"{name}.out.jsonl") for name in cases}


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_predict_jsonl(runs):
    code, out, err, _, target = runs["jsonl"]
    assert code == 0, err
    rows = _rows(target)
    assert [r["id"] for r in rows] == ["1", "b", "c"]
    assert all(set(r) == {"id", "completion"} and isinstance(r["completion"], str) for r in rows)
    assert json.loads(out.strip().splitlines()[-1]) == {"out": str(target), "predictions": 3, "resumed": 0}
    assert not target.with_name(target.name + ".partial").exists()


def test_predict_csv(runs):
    code, _, err, _, target = runs["csv"]
    assert code == 0, err
    rows = _rows(target)
    assert [r["id"] for r in rows] == ["p1", "p2"]
    assert all(set(r) == {"id", "completion"} for r in rows)


def test_predict_malformed_input_names_file_line_and_field(runs):
    code, _, err, source, target = runs["bad"]
    assert code != 0
    assert f"{source}:2" in err and "product.title" in err
    assert not target.exists()  # nothing half-written


@pytest.mark.slow  # ~25 s: several `agrl predict` processes
def test_resume_after_a_kill_keeps_done_rows_and_never_duplicates(model_dir, tmp_path):
    data = tmp_path / "records.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    out = tmp_path / "p.csv"
    # what a run killed mid-batch leaves: one complete row and a line cut in the middle
    (tmp_path / "p.csv.partial").write_text(
        json.dumps({"id": "b", "completion": "kept"}) + '\n{"id": "c", "compl', encoding="utf-8"
    )
    code, out_text, err = _finish(
        _start(
            "--model",
            str(model_dir),
            "--data",
            str(data),
            "--out",
            str(out),
            "--max-new-tokens",
            "4",
            "--batch-size",
            "2",
            "--resume",
        )
    )
    assert code == 0, err
    assert json.loads(out_text.strip().splitlines()[-1])["resumed"] == 1
    with open(out, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == ["1", "b", "c"]  # input order, each id once
    assert rows[1]["completion"] == "kept"  # not judged again
    assert not (tmp_path / "p.csv.partial").exists()
    # resuming a finished run judges nothing; a Parquet output is read back by the same reader
    code, out_text, err = _finish(
        _start("--model", str(model_dir), "--data", str(data), "--out", str(out), "--resume")
    )
    assert code == 0 and json.loads(out_text.strip().splitlines()[-1])["resumed"] == 3
    code, _, err = _finish(
        _start(
            "--model",
            str(model_dir),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "p.parquet"),
            "--max-new-tokens",
            "4",
        )
    )
    assert code == 0, err
    import pyarrow.parquet as pq

    assert pq.read_table(tmp_path / "p.parquet").column("id").to_pylist() == ["1", "b", "c"]
    code, _, err = _finish(
        _start("--model", str(model_dir), "--data", str(data), "--out", str(tmp_path / "p.txt"))
    )
    assert code != 0 and "unsupported output type" in err


def test_out_equal_to_data_and_empty_input_are_errors_before_any_model_load(tmp_path):
    from agrl.predict import run_predict

    data = tmp_path / "records.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    before = data.read_bytes()
    with pytest.raises(ValueError, match="is the input file"):
        run_predict("no-such-model", data, tmp_path / "." / "records.jsonl")
    assert data.read_bytes() == before  # the data survives
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ValueError, match=r"empty\.jsonl.*no records to judge"):
        run_predict("no-such-model", empty, tmp_path / "out.jsonl")
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "out.jsonl.partial").exists()


def test_file_system_and_model_failures_are_one_error_line_and_leave_nothing(model_dir, tmp_path, capsys):
    from agrl.cli import main

    data = tmp_path / "records.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    under_file = tmp_path / "records.jsonl" / "out.jsonl"  # --out under a file
    missing_model = tmp_path / "out.jsonl"
    cases = [
        (["--model", str(model_dir), "--data", str(data), "--out", str(under_file)], "no folder"),
        (
            ["--model", str(tmp_path / "no-model"), "--data", str(data), "--out", str(missing_model)],
            "no-model",
        ),
    ]
    for args, expected in cases:
        assert main(["predict", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("agrl: error:") and expected in err and "Traceback" not in err
    assert not missing_model.exists() and not (tmp_path / "out.jsonl.partial").exists()
    # a .partial row without an id under --resume: an error naming the file, not a KeyError
    out = tmp_path / "resumed.jsonl"
    (tmp_path / "resumed.jsonl.partial").write_text(json.dumps({"completion": "x"}) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"resumed\.jsonl\.partial.*no id"):
        from agrl.predict import run_predict

        run_predict(str(model_dir), data, out, resume=True)


def test_bf16_inference_runs_and_writes_every_row(model_dir, tmp_path):
    from agrl.models import load_model, torch_dtype
    from agrl.predict import run_predict

    data = tmp_path / "records.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in RECORDS), encoding="utf-8")
    summary = run_predict(str(model_dir), data, tmp_path / "bf16.jsonl", max_new_tokens=6, dtype="bf16")
    assert summary["predictions"] == 3 and len(_rows(tmp_path / "bf16.jsonl")) == 3
    model, _ = load_model(str(model_dir), torch_dtype("bf16"))
    assert next(model.parameters()).dtype == torch_dtype("bf16")
    with pytest.raises(ValueError, match="dtype"):
        torch_dtype("fp8")


def test_records_are_judged_shortest_prompt_first_and_written_in_input_order(model_dir, tmp_path):
    # predict checkpoints once per batch, so a batch pads to its longest prompt unless the whole job
    # is ordered by prompt length; the output must still follow the input.
    from transformers import AutoTokenizer

    from agrl.models.generate import encode_prompts
    from agrl.predict import by_prompt_length

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    records = [RECORDS[2], RECORDS[1], RECORDS[0], {**RECORDS[2], "id": "d", "query": "usb"}]
    ordered, prompts = by_prompt_length(records, tokenizer)
    assert prompts == encode_prompts(tokenizer, ordered)  # encoded once, in the same order
    lengths = [len(p) for p in prompts]
    assert lengths == sorted(lengths)
    assert sorted(map(str, (r["id"] for r in ordered))) == sorted(map(str, (r["id"] for r in records)))
    assert lengths[0] < lengths[-1]  # the records differ in length, so the test can fail

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "p.jsonl"
    flags = ["--batch-size", "2", "--max-new-tokens", "4"]
    code, _, err = _finish(_start("--model", str(model_dir), "--data", str(data), "--out", str(out), *flags))
    assert code == 0, err
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["c", "b", "1", "d"]


def test_pre_encoded_prompts_generate_what_the_records_do(model_dir):
    from agrl.models import load_model
    from agrl.models.generate import encode_prompts, generate_completions

    model, tokenizer = load_model(str(model_dir))
    prompts = encode_prompts(tokenizer, RECORDS)
    plain = generate_completions(model, tokenizer, RECORDS, max_new_tokens=5, progress=False)
    given = generate_completions(model, tokenizer, RECORDS, max_new_tokens=5, progress=False, prompts=prompts)
    assert given == plain and len(plain) == len(RECORDS) and all(len(t) == 1 for t in plain)
    with pytest.raises(ValueError, match="2 encoded prompts for 3 records"):
        generate_completions(model, tokenizer, RECORDS, progress=False, prompts=prompts[:2])


def test_seeded_sampling_does_not_depend_on_what_ran_before(model_dir):
    # DPO's pass@8 pairs and the gate's stuck rate sample; unseeded, they depended on the arm run
    # before them in the same process.
    import torch

    from agrl.models import load_model
    from agrl.models.generate import generate_completions

    model, tokenizer = load_model(str(model_dir))

    def sample(seed: int) -> list[list[str]]:
        return generate_completions(model, tokenizer, RECORDS, max_new_tokens=8, do_sample=True,
                                    num_return_sequences=4, progress=False, seed=seed)  # fmt: skip

    torch.manual_seed(1)
    first = sample(0)
    after_sampling = torch.rand(1)
    torch.manual_seed(1)
    torch.rand(5)  # another history of the global RNG
    assert sample(0) == first
    assert sample(1) != first  # the seed matters, so the test can fail
    torch.manual_seed(1)
    sample(0)
    assert torch.equal(torch.rand(1), after_sampling)  # the caller's RNG is left as it was
