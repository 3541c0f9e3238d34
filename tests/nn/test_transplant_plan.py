"""The transplant plan against hand-built byte-level tokenizers: where each hybrid token takes its rows.

Every expectation is written out by hand from the bytes (GPT-2's byte alphabet: 0xF0 is 'ð', 0x9F 'Ł',
0x98 'ĺ', 0x80 'Ģ'; the four bytes F0 9F 98 80 are U+1F600), not computed by the code under test."""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from hybridc.data.tokenizer import HFTokenizer
from hybridc.nn.transplant import transplant_plan
from hybridc.spec.tokenizer_identity import byte_to_unicode

ALPHABET = [byte_to_unicode()[b] for b in range(256)]


def byte_level(extra: list[str], merges: list[tuple[str, str]], specials: dict[str, str]) -> HFTokenizer:
    """A GPT-2-style byte-level BPE: the 256 byte characters (ids 0..255), then ``extra`` tokens and the
    results of ``merges``, then the special tokens (role -> token; one token may hold several roles)."""
    vocab = {c: i for i, c in enumerate(ALPHABET)}
    for token in [*extra, *(a + b for a, b in merges)]:  # (every merge's result is a token)
        vocab.setdefault(token, len(vocab))
    rust = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    rust.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    rust.decoder = decoders.ByteLevel()
    rust.add_special_tokens(sorted(set(specials.values()), key=list(specials.values()).index))
    return HFTokenizer(name="t", tokenizer=PreTrainedTokenizerFast(tokenizer_object=rust, **specials))


def byte_fallback(words: list[str], specials: dict[str, str]) -> HFTokenizer:
    """A word-level tokenizer with SentencePiece's ``<0xHH>`` byte tokens (not byte-level spelled)."""
    vocab = {"<unk>": 0}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for word in words:
        vocab.setdefault(word, len(vocab))
    rust = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    rust.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    rust.add_special_tokens(list(dict.fromkeys(specials.values())))
    return HFTokenizer(name="t", tokenizer=PreTrainedTokenizerFast(tokenizer_object=rust, unk_token="<unk>",
                                                                   **specials))


def ids(tok: HFTokenizer, *tokens: str) -> tuple[int, ...]:
    vocab = tok.tokenizer.get_vocab()
    return tuple(vocab[t] for t in tokens)


def source_of(plan, hybrid: HFTokenizer, token: str) -> tuple[int, ...]:
    return plan.sources[hybrid.tokenizer.get_vocab()[token]]


def test_a_fragment_of_a_multibyte_character_takes_the_rows_of_its_bytes():
    smile_3 = "ðŁĺ"  # F0 9F 98: three of the four bytes of U+1F600, no text of its own
    hybrid = byte_level([smile_3, "ðŁĺĢ"], [("ð", "Ł"), ("ðŁ", "ĺ"), ("ðŁĺ", "Ģ")], {"eos_token": "<|endoftext|>"})
    own = byte_level(["ðŁ"], [("ð", "Ł")], {"eos_token": "</s>"})
    plan = transplant_plan(own, hybrid, hybrid.vocab_size)
    assert source_of(plan, hybrid, smile_3) == ids(own, "ðŁ", "ĺ")  # its merges over its own byte alphabet
    assert source_of(plan, hybrid, "ðŁĺĢ") == ids(own, "ðŁ", "ĺ", "Ģ")  # the whole character, the same way
    replacement = ids(own, "ï", "¿", "½")  # U+FFFD's bytes EF BF BD: what decoding the fragment would give
    assert all(source_of(plan, hybrid, t) != replacement for t in (smile_3, "ðŁĺĢ"))


def test_fragments_with_one_replacement_text_keep_distinct_rows():
    fragments = ["ðŁĺ", "ðŁĻ", "ðŁ"]  # F0 9F 98 / F0 9F 99 / F0 9F: all decode to U+FFFD
    hybrid = byte_level(fragments, [("ð", "Ł"), ("ðŁ", "ĺ"), ("ðŁ", "Ļ")], {"eos_token": "<|endoftext|>"})
    own = byte_level([], [], {"eos_token": "</s>"})
    plan = transplant_plan(own, hybrid, hybrid.vocab_size)
    assert source_of(plan, hybrid, "ðŁĺ") == ids(own, "ð", "Ł", "ĺ")
    assert source_of(plan, hybrid, "ðŁĻ") == ids(own, "ð", "Ł", "Ļ")
    assert source_of(plan, hybrid, "ðŁ") == ids(own, "ð", "Ł")


def test_a_sentencepiece_byte_token_takes_the_byte_level_row_of_its_byte():
    hybrid = byte_fallback(["hello"], {"eos_token": "</s>"})
    own = byte_level([], [], {"eos_token": "<|endoftext|>"})
    plan = transplant_plan(own, hybrid, hybrid.vocab_size)
    assert source_of(plan, hybrid, "<0xF0>") == ids(own, "ð")
    assert source_of(plan, hybrid, "<0x20>") == ids(own, "Ġ")  # the space byte


def test_a_byte_level_fragment_takes_the_byte_tokens_of_a_byte_fallback_component():
    hybrid = byte_level(["ðŁĺ"], [("ð", "Ł"), ("ðŁ", "ĺ")], {"eos_token": "<|endoftext|>"})
    own = byte_fallback(["hello"], {"eos_token": "</s>"})
    plan = transplant_plan(own, hybrid, hybrid.vocab_size)
    assert source_of(plan, hybrid, "ðŁĺ") == ids(own, "<0xF0>", "<0x9F>", "<0x98>")


def test_whole_text_tokens_are_still_read_as_text():
    hybrid = byte_level(["Ġhello"], [("Ġ", "h"), ("Ġh", "e"), ("Ġhe", "l"), ("Ġhel", "l"), ("Ġhell", "o")],
                        {"eos_token": "<|endoftext|>"})
    own = byte_fallback(["hello"], {"eos_token": "</s>"})
    plan = transplant_plan(own, hybrid, hybrid.vocab_size)
    assert source_of(plan, hybrid, "Ġhello") == ids(own, "hello")  # " hello": the space is whitespace to it


def test_a_token_of_several_roles_takes_the_row_of_the_first_role_eos():
    """GPT-2's <|endoftext|> is bos, eos and unk at once; the component's eos, bos and unk are distinct."""
    hybrid = byte_level([], [], {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>",
                                 "unk_token": "<|endoftext|>"})
    own = byte_level([], [], {"eos_token": "</s>", "bos_token": "<s>", "unk_token": "<unk>", "pad_token": "<pad>"})
    plan = transplant_plan(own, hybrid, hybrid.vocab_size)
    assert source_of(plan, hybrid, "<|endoftext|>") == ids(own, "</s>")
    assert plan.special == 1


def test_roles_held_by_distinct_tokens_each_take_their_own_row():
    hybrid = byte_level([], [], {"eos_token": "<eos>", "bos_token": "<bos>", "pad_token": "<bos>"})
    own = byte_level([], [], {"eos_token": "</s>", "bos_token": "<s>", "pad_token": "<pad>"})
    plan = transplant_plan(own, hybrid, hybrid.vocab_size)
    assert source_of(plan, hybrid, "<eos>") == ids(own, "</s>")
    assert source_of(plan, hybrid, "<bos>") == ids(own, "<s>")  # bos before pad
