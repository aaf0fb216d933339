"""Raw text through a tokenizer.json kept in the bundle: the text block, the encoder's padding and
truncation to the input's bounds, the vocabulary check, and the manifest round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeport.bundle import load_bundle
from edgeport.config import CalibrationConfig, ExportConfig
from edgeport.errors import BundleError, ConfigError, InputError
from edgeport.specs import BATCH, Dim, Signature, TensorSpec
from edgeport.text import TextEncoder, text_block, validate_text_block

pytest.importorskip("tokenizers")


def write_tokenizer(path, n_words=20, pad="[PAD]", padding=False):
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = [pad, "[UNK]"] + [f"w{i}" for i in range(n_words)]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if padding:
        tok.enable_padding(pad_id=1, pad_token="[UNK]")
    tok.save(str(path))
    return path


def text_signature(seq=12, mask=False, types=False) -> Signature:
    shape = (BATCH, seq)
    ins = [TensorSpec(name="input_ids", dtype="int64", shape=shape)]
    if mask:
        ins.append(TensorSpec(name="attention_mask", dtype="int64", shape=shape))
    if types:
        ins.append(TensorSpec(name="token_type_ids", dtype="int32", shape=shape))
    out = TensorSpec(name="logits", dtype="float32", shape=(BATCH, 2), kind="logits")
    dims = {BATCH: Dim(BATCH, 1, 64)}
    if isinstance(seq, str):
        dims[seq] = Dim(seq, 4, 8)
    return Signature(tuple(ins), (out,), dims)


def test_the_block_names_the_inputs_pad_id_and_bounds(tmp_path):
    tok = write_tokenizer(tmp_path / "tokenizer.json")
    block, data = text_block(text_signature("seq", mask=True, types=True), tok, embedding_rows=100)
    assert block == {
        "input": "input_ids",
        "mask_input": "attention_mask",
        "type_input": "token_type_ids",
        "pad_id": 0,
        "min_length": 4,
        "max_length": 8,
        "vocab_size": 22,
        "embedding_rows": 100,
    }
    assert data == tok.read_bytes()
    padded = write_tokenizer(tmp_path / "p.json", padding=True)
    assert text_block(text_signature(), padded)[0]["pad_id"] == 1  # the tokenizer's own padding wins


def test_the_encoder_pads_and_cuts_to_the_inputs_bounds(tmp_path):
    sig = text_signature("seq", mask=True, types=True)
    tok = write_tokenizer(tmp_path / "tokenizer.json")
    block, data = text_block(sig, tok)
    enc = TextEncoder(block, data, sig)
    feeds = enc.encode(["w1 w2", "w3"])  # shorter than min_length 4: padded to 4
    assert feeds["input_ids"].tolist() == [[3, 4, 0, 0], [5, 0, 0, 0]]
    assert feeds["attention_mask"].tolist() == [[1, 1, 0, 0], [1, 0, 0, 0]]
    assert feeds["token_type_ids"].dtype == np.int32 and not feeds["token_type_ids"].any()
    long_ = enc.encode(" ".join(f"w{i}" for i in range(12)))  # longer than max_length 8: cut to 8
    assert long_["input_ids"].shape == (1, 8) and long_["attention_mask"].all()
    assert enc.encode(["w1 zz"])["input_ids"].tolist() == [[3, 1, 0, 0]]  # unknown word: [UNK]
    with pytest.raises(InputError, match="strings"):
        enc.encode([1, 2])


def test_tokenizers_that_cannot_feed_the_model_are_refused(tmp_path):
    tok = write_tokenizer(tmp_path / "tokenizer.json", n_words=40)
    with pytest.raises(ConfigError) as exc:
        text_block(text_signature(), tok, embedding_rows=32)
    assert "has 42 tokens but the model's largest embedding has 32 rows" in str(exc.value)
    assert "\n" not in str(exc.value)
    (tmp_path / "junk.json").write_text('{"not": "a tokenizer"}')
    with pytest.raises(ConfigError, match="not a tokenizer.json"):
        text_block(text_signature(), tmp_path / "junk.json")
    image = TensorSpec(name="image", dtype="float32", shape=(BATCH, 3, 8, 8), layout="NCHW")
    sig = Signature((image,), text_signature().outputs, {BATCH: Dim(BATCH, 1, 8)})
    with pytest.raises(ConfigError, match="raw text cannot feed"):
        text_block(sig, write_tokenizer(tmp_path / "t2.json"))


def _bad(where, what):
    return BundleError(f"manifest.json: {where} {what}")


BAD_BLOCKS = {
    "unknown input": ({"input": "pixels"}, "text.input"),
    "mask is the ids": ({"mask_input": "input_ids"}, "text.mask_input"),
    "pad id beyond": ({"pad_id": 22}, "text.pad_id"),
    "vocab over rows": ({"embedding_rows": 10}, "text.vocab_size"),
    "bounds": ({"max_length": 99}, "sequence bounds"),
    "bool": ({"pad_id": True}, "text.pad_id"),
    "extra field": ({"chat_template": "x"}, "must hold"),
}


@pytest.mark.parametrize("case", list(BAD_BLOCKS))
def test_bad_text_blocks_are_refused_by_field(tmp_path, case):
    sig = text_signature()
    block, _ = text_block(sig, write_tokenizer(tmp_path / "t.json"))
    block = {"tokenizer": {"path": "text/tokenizer.json", "sha256": "0" * 64, "bytes": 1}, **block}
    change, match = BAD_BLOCKS[case]
    with pytest.raises(BundleError, match=match):
        validate_text_block({**block, **change}, sig, _bad)


@pytest.fixture(scope="module")
def text_bundle(tmp_path_factory):
    from edgeport.export.api import export

    tmp = tmp_path_factory.mktemp("text")
    rng = np.random.default_rng(0)
    np.savez(
        tmp / "val.npz", ids=rng.integers(0, 22, (30, 12)).astype(np.int64), labels=rng.integers(0, 2, 30)
    )
    return export(
        model_ref="data_models:text_classifier",
        random_init=True,
        inputs=["ids:1,12:int64"],
        data=f"npz:{tmp / 'val.npz'}",
        out=tmp / "bundle",
        config=ExportConfig(formats=("onnx",)),
        calibration=CalibrationConfig(size=10),
        tokenizer=write_tokenizer(tmp / "tokenizer.json"),
        progress=False,
    )


def test_export_keeps_the_tokenizer_hashed_and_predict_takes_text(text_bundle):
    b = load_bundle(text_bundle.path)
    t = b.manifest.text
    assert t["tokenizer"]["path"] == "text/tokenizer.json" and (b.path / "text" / "tokenizer.json").is_file()
    assert (t["input"], t["pad_id"], t["max_length"], t["embedding_rows"]) == ("ids", 0, 12, 32)
    assert json.loads((b.path / "manifest.json").read_text())["text"] == t
    feeds = b.text_encoder().encode(["w1 w2 w3"])
    assert feeds["ids"].tolist() == [[3, 4, 5] + [0] * 9]
    with b.runner("onnxruntime") as r:
        classes, probs = r.predict(["w1 w2 w3", "w9 " * 40])
        direct = r.run(b.text_encoder().encode(["w1 w2 w3", "w9 " * 40]))["logits"]
    assert classes.tolist() == direct.argmax(1).tolist() and probs.shape == (2, 2)


def test_a_tampered_tokenizer_is_a_hash_error(text_bundle, tmp_path):
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(text_bundle.path, copy)
    p = copy / "text" / "tokenizer.json"
    p.write_text(p.read_text().replace('"w1"', '"w7"', 1))
    with pytest.raises(BundleError, match="text/tokenizer.json"):
        load_bundle(copy)


def test_a_tokenizer_too_large_for_the_embedding_writes_nothing(tmp_path, capsys):
    from edgeport.cli import main

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "val.npz", ids=rng.integers(0, 22, (30, 12)).astype(np.int64))
    tok = write_tokenizer(tmp_path / "tokenizer.json", n_words=60)
    out = tmp_path / "bundle"
    rc = main(["export", "--model", "data_models:text_classifier", "--random-init", "--input", "ids:1,12:int64",
               "--data", f"npz:{tmp_path / 'val.npz'}", "--tokenizer", str(tok), "--formats", "onnx",
               "--calibration-size", "10", "--out", str(out), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert (
        rc == 2 and err.count("\n") == 1 and "62 tokens but the model's largest embedding has 32 rows" in err
    )
    assert not out.exists()
