"""Tokenizer: training, round trips, special tokens, file formats, token bytes, chat masks, CLIs."""
from __future__ import annotations

import pickle

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import tiktoken
import torch

from nanochat_core.common import settings
from nanochat_core.cli import tok_eval, tok_train
from nanochat_core.tokenizer.bpe import (
    SPECIAL_TOKENS,
    SPLIT_PATTERN,
    Tokenizer,
    compute_token_bytes,
    get_token_bytes,
    get_tokenizer,
    save_token_bytes,
)

# Small mixed corpus: English, numbers, Korean, emoji (repeated so emoji/Hangul byte pairs merge,
# which creates tokens that are partial UTF-8 sequences).
CORPUS = [
    "The quick brown fox jumps over the lazy dog 1234567 times. ",
    "안녕하세요 세계! 오늘은 날씨가 좋습니다. ",
    "Emoji party 🎉🎉🚀🚀 and 🤖 robots 🤖 ",
    "def f(x):\n    return x ** 2  # square\n",
    "Numbers like 3.14159 and 2718281828 split into pairs. ",
] * 40

ROUND_TRIP_TEXTS = [
    "",
    "hello world",
    "  leading and trailing spaces  \n\n\ttabs",
    "안녕하세요, 세계 — naïve café, Ünïcödé, 日本語のテキスト",
    "emoji 🎉🚀🤖👨‍👩‍👧‍👦 flags 🇫🇷 and skin 👍🏽",
    "<|bos|> special strings <|user_start|> inside text <|assistant_end|>",
    "\x00 control \x7f chars \u200b zero width",
]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train_from_iterator(iter(CORPUS), 400)


@pytest.fixture(scope="module")
def byte_tok() -> Tokenizer:
    return Tokenizer.train_from_iterator(iter(["abc"]), 265)


# ---- training and round trips ---------------------------------------------------------------

def test_byte_level_vocab_265(byte_tok):
    assert byte_tok.get_vocab_size() == 265
    assert byte_tok.encode("ab") == [97, 98]  # rank of byte b is b
    assert byte_tok.encode("é") == list("é".encode("utf-8"))


def test_vocab_size_too_small_is_rejected():
    with pytest.raises(ValueError, match="at least 265"):
        Tokenizer.train_from_iterator(iter(["abc"]), 264)


def test_trained_vocab_and_pattern(tok):
    assert tok.get_vocab_size() == 400
    assert tok.enc._pat_str == SPLIT_PATTERN
    # numbers split in groups of at most two digits, so no token crosses a 2-digit boundary
    pieces = [tok.decode([i]) for i in tok.encode("2718281828")]
    assert all(len(p) <= 2 for p in pieces)


@pytest.mark.parametrize("text", ROUND_TRIP_TEXTS)
def test_round_trip(tok, byte_tok, text):
    assert tok.decode(tok.encode(text)) == text
    assert byte_tok.decode(byte_tok.encode(text)) == text


def test_partial_utf8_tokens_round_trip(tok):
    partial = [i for i in range(256, len(tok.enc._mergeable_ranks)) if _is_partial_utf8(tok.token_raw_bytes(i))]
    assert partial, "corpus should produce merged tokens that are partial UTF-8 sequences"
    # concatenating partial tokens in order reassembles valid text
    text = "🎉🚀🤖 안녕하세요"
    ids = tok.encode(text)
    assert b"".join(tok.token_raw_bytes(i) for i in ids) == text.encode("utf-8")
    assert tok.decode(ids) == text


def _is_partial_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True


# ---- special tokens and encode API ----------------------------------------------------------

def test_special_tokens_order_and_ids(tok):
    assert SPECIAL_TOKENS == [
        "<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>",
        "<|python_start|>", "<|python_end|>", "<|output_start|>", "<|output_end|>",
    ]
    n_ranks = len(tok.enc._mergeable_ranks)
    assert [tok.encode_special(s) for s in SPECIAL_TOKENS] == list(range(n_ranks, n_ranks + 9))
    assert tok.get_special_tokens() == set(SPECIAL_TOKENS)
    assert tok.get_bos_token_id() == n_ranks
    assert tok.id_to_token(tok.get_bos_token_id()) == "<|bos|>"


def test_special_strings_in_text_are_ordinary(tok):
    ids = tok.encode("<|bos|><|assistant_end|>")
    specials = {tok.encode_special(s) for s in SPECIAL_TOKENS}
    assert not specials & set(ids)
    assert tok.decode(ids) == "<|bos|><|assistant_end|>"


def test_prepend_append_and_batch_equals_single(tok):
    bos, end = tok.get_bos_token_id(), tok.encode_special("<|assistant_end|>")
    single = tok.encode("hello world")
    assert tok.encode("hello world", prepend="<|bos|>", append=end) == [bos] + single + [end]
    assert tok.encode("hello world", prepend=bos) == [bos] + single
    batch = tok.encode(ROUND_TRIP_TEXTS, prepend="<|bos|>", num_threads=2)
    assert batch == [[bos] + tok.encode(t) for t in ROUND_TRIP_TEXTS]
    assert tok.encode(ROUND_TRIP_TEXTS) == [tok.encode(t) for t in ROUND_TRIP_TEXTS]
    with pytest.raises(TypeError):
        tok.encode(123)


# ---- files ----------------------------------------------------------------------------------

def test_save_load_round_trip(tok, tmp_path):
    path = tok.save(tmp_path)
    assert path == tmp_path / "tokenizer.pkl"
    assert not [p for p in tmp_path.iterdir() if p.name != "tokenizer.pkl"]  # no temp files left
    loaded = Tokenizer.from_directory(tmp_path)
    assert isinstance(pickle.loads(path.read_bytes()), tiktoken.Encoding)  # nanochat's format
    assert loaded.get_vocab_size() == tok.get_vocab_size()
    for text in ROUND_TRIP_TEXTS:
        assert loaded.encode(text) == tok.encode(text)


def test_loads_nanochat_written_pickle(tmp_path):
    # nanochat: enc = tiktoken.Encoding(...); pickle.dump(enc, open(dir / "tokenizer.pkl", "wb"))
    ranks = {bytes([i]): i for i in range(256)}
    ranks[b"ab"] = 256
    enc = tiktoken.Encoding(
        name="rustbpe", pat_str=SPLIT_PATTERN, mergeable_ranks=ranks,
        special_tokens={s: 257 + i for i, s in enumerate(SPECIAL_TOKENS)},
    )
    with open(tmp_path / "tokenizer.pkl", "wb") as f:
        pickle.dump(enc, f)
    loaded = Tokenizer.from_directory(tmp_path)
    assert loaded.encode("abab") == [256, 256]
    assert loaded.get_bos_token_id() == 257
    assert loaded.get_vocab_size() == 266


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="tok_train"):
        Tokenizer.from_directory(tmp_path)
    (tmp_path / "tokenizer.pkl").write_bytes(pickle.dumps({"not": "an encoding"}))
    with pytest.raises(ValueError, match="tiktoken.Encoding"):
        Tokenizer.from_directory(tmp_path)


def test_token_bytes_are_raw_lengths(tok, tmp_path):
    tb = compute_token_bytes(tok)
    assert tb.dtype == torch.int32 and tb.shape == (tok.get_vocab_size(),)
    n_ranks = len(tok.enc._mergeable_ranks)
    assert tb[:256].tolist() == [1] * 256
    assert tb[n_ranks:].tolist() == [0] * 9
    for i in range(n_ranks):
        assert tb[i] == len(tok.token_raw_bytes(i))
    # a partial UTF-8 token: decode-to-str-and-re-encode (nanochat's bug) would count U+FFFD's 3 bytes
    partial = next(i for i in range(256, n_ranks) if _is_partial_utf8(tok.token_raw_bytes(i)))
    assert tb[partial] == len(tok.token_raw_bytes(partial))
    assert tb[partial] != len(tok.decode([partial]).encode("utf-8"))


def test_get_tokenizer_and_token_bytes_from_base_dir(tok, tmp_base_dir):
    with pytest.raises(FileNotFoundError, match="token_bytes.pt"):
        get_token_bytes()
    tok.save(settings.tokenizer_dir())
    save_token_bytes(tok, settings.tokenizer_dir())
    assert get_tokenizer().encode("hello") == tok.encode("hello")
    assert torch.equal(get_token_bytes(), compute_token_bytes(tok))


# ---- chat rendering -------------------------------------------------------------------------

def _sp(tok, name):
    return tok.encode_special(f"<|{name}|>")


def test_render_basic_masks(tok):
    conv = {"messages": [
        {"role": "user", "content": "hi there"},
        {"role": "assistant", "content": "hello!"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4"},
    ]}
    ids, mask = tok.render_conversation(conv)
    u, a = tok.encode("hi there"), tok.encode("hello!")
    u2, a2 = tok.encode("2+2?"), tok.encode("4")
    expected = (
        [(tok.get_bos_token_id(), 0), (_sp(tok, "user_start"), 0)] + [(t, 0) for t in u] + [(_sp(tok, "user_end"), 0)]
        + [(_sp(tok, "assistant_start"), 0)] + [(t, 1) for t in a] + [(_sp(tok, "assistant_end"), 1)]
        + [(_sp(tok, "user_start"), 0)] + [(t, 0) for t in u2] + [(_sp(tok, "user_end"), 0)]
        + [(_sp(tok, "assistant_start"), 0)] + [(t, 1) for t in a2] + [(_sp(tok, "assistant_end"), 1)]
    )
    assert list(zip(ids, mask)) == expected


def test_render_system_merges_into_first_user(tok):
    with_system = {"messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "yo"},
    ]}
    merged = {"messages": [{"role": "user", "content": "be brief\n\nhi"}, {"role": "assistant", "content": "yo"}]}
    assert tok.render_conversation(with_system) == tok.render_conversation(merged)
    assert with_system["messages"][1]["content"] == "hi"  # caller's dict untouched


def test_render_tool_calls(tok):
    conv = {"messages": [
        {"role": "user", "content": "compute"},
        {"role": "assistant", "content": [
            {"type": "text", "text": "Let me run "},
            {"type": "python", "text": "6*7"},
            {"type": "python_output", "text": "42"},
            {"type": "text", "text": "It is 42."},
        ]},
    ]}
    ids, mask = tok.render_conversation(conv)
    start = ids.index(_sp(tok, "assistant_start"))
    body = list(zip(ids[start:], mask[start:]))
    expected = (
        [(_sp(tok, "assistant_start"), 0)]
        + [(t, 1) for t in tok.encode("Let me run ")]
        + [(_sp(tok, "python_start"), 1)] + [(t, 1) for t in tok.encode("6*7")] + [(_sp(tok, "python_end"), 1)]
        + [(_sp(tok, "output_start"), 0)] + [(t, 0) for t in tok.encode("42")] + [(_sp(tok, "output_end"), 0)]
        + [(t, 1) for t in tok.encode("It is 42.")]
        + [(_sp(tok, "assistant_end"), 1)]
    )
    assert body == expected


def test_render_truncates(tok):
    conv = {"messages": [{"role": "user", "content": "word " * 200}, {"role": "assistant", "content": "ok " * 200}]}
    full_ids, full_mask = tok.render_conversation(conv, max_tokens=10**6)
    ids, mask = tok.render_conversation(conv, max_tokens=37)
    assert len(ids) == len(mask) == 37
    assert ids == full_ids[:37] and mask == full_mask[:37]


@pytest.mark.parametrize("messages, match", [
    ([], "no messages"),
    ([{"role": "assistant", "content": "x"}], "expected 'user'"),
    ([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}], "message 1 .*expected 'assistant'"),
    ([{"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}], "followed by a user"),
    ([{"role": "user", "content": "a"}, {"role": "system", "content": "s"}], "only allowed first"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": [{"type": "image", "text": "?"}]}], "unknown assistant part"),
    ([{"role": "user", "content": ["a"]}], "user content must be a string"),
])
def test_render_bad_conversations(tok, messages, match):
    with pytest.raises(ValueError, match=match):
        tok.render_conversation({"messages": messages})


def test_render_for_completion(tok):
    conv = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    prompt = tok.render_for_completion(conv)
    ids, _ = tok.render_conversation({"messages": conv["messages"][:1]})
    assert prompt == ids + [_sp(tok, "assistant_start")]
    assert len(conv["messages"]) == 2  # caller's dict untouched
    with pytest.raises(ValueError, match="last message"):
        tok.render_for_completion({"messages": conv["messages"][:1]})


# ---- CLIs -----------------------------------------------------------------------------------

def _write_shards(base, docs_per_shard):
    data = settings.base_data_dir(base)
    data.mkdir(parents=True, exist_ok=True)
    for i, docs in enumerate(docs_per_shard):
        pq.write_table(pa.table({"text": docs}), data / f"shard_{i:05d}.parquet", row_group_size=16, compression="zstd")


def test_tok_train_cli_end_to_end(tmp_base_dir, capsys, monkeypatch):
    _write_shards(tmp_base_dir, [CORPUS[:120], CORPUS[120:], ["validation text only"] * 5])
    assert tok_train.main(["--vocab-size", "400", "--max-chars", "1e5", "--doc-cap", "10000"]) == 0
    out = capsys.readouterr().out
    assert "Training time:" in out and "Vocab size: 400" in out
    tok_dir = tmp_base_dir / "tokenizer"
    assert sorted(p.name for p in tok_dir.iterdir()) == ["token_bytes.pt", "tokenizer.pkl"]
    trained = get_tokenizer()
    assert trained.get_vocab_size() == 400
    assert torch.equal(get_token_bytes(), compute_token_bytes(trained))
    text = "안녕하세요 🎉 fox 1234"
    assert trained.decode(trained.encode(text)) == text

    # tok_eval on the same base dir; reference encodings stubbed as unavailable (no network in tests)
    monkeypatch.setattr(tok_eval, "load_reference_encoding", lambda name, timeout=30.0: (None, "ConnectionError"))
    assert tok_eval.main([]) == 0
    out = capsys.readouterr().out
    assert "gpt2: not available" in out and "cl100k_base: not available" in out
    for label in ("news", "korean", "code", "math", "science", "our-train", "our-val"):
        assert label in out


def test_tok_train_doc_cap_and_max_chars(tmp_base_dir):
    _write_shards(tmp_base_dir, [["a" * 50 + " b"] * 100, ["val"]])
    stats = tok_train.train(max_chars=200, doc_cap=20, vocab_size=300)
    assert stats["characters"] == 200 and stats["documents"] == 10  # 10 docs cropped to 20 chars


def test_tok_train_errors(tmp_base_dir, capsys):
    assert tok_train.main(["--vocab-size", "300"]) == 2
    assert "No parquet shards" in capsys.readouterr().err
    _write_shards(tmp_base_dir, [[""] * 3, ["val"]])
    assert tok_train.main(["--vocab-size", "300"]) == 2
    assert "no text" in capsys.readouterr().err
    assert not (tmp_base_dir / "tokenizer").exists()  # nothing half-written
    (settings.base_data_dir() / "shard_00000.parquet").write_bytes(b"not parquet")
    assert tok_train.main(["--vocab-size", "300"]) == 2
    assert "shard_00000.parquet" in capsys.readouterr().err
    pq.write_table(pa.table({"body": ["x"]}), settings.base_data_dir() / "shard_00000.parquet")
    assert tok_train.main(["--vocab-size", "300"]) == 2
    assert "no 'text' column" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tok_train.main(["--vocab-size", "12.5"])


def test_int_like_flags():
    from nanochat_core.cli.arg_types import positive_int

    assert positive_int("2e9") == 2_000_000_000
    assert positive_int("2_000") == 2000
    assert tok_train.build_parser().parse_args([]).max_chars == 2_000_000_000


def test_tok_eval_table_with_reference_column(tok):
    table = tok_eval.format_table({"news": tok_eval.SAMPLES["news"]}, {"ours": tok.encode, "gpt2": lambda t: t.split()})
    assert "gpt2 B/T" in table and "ours B/T" in table
    n_bytes = len(tok_eval.SAMPLES["news"].encode())
    assert f"{n_bytes / len(tok_eval.SAMPLES['news'].split()):.2f}" in table


def test_tok_eval_without_tokenizer(tmp_base_dir, capsys):
    assert tok_eval.main([]) == 2
    assert "tok_train" in capsys.readouterr().err
