"""The kernel's reading of numbers (SPEC §1) equals the reference's, for
every digit, every length up to and past 15, the bytes next to the digits
in ASCII, and strings at the very start of their buffer: the kernel reads
digits eight at a time in words that end at a number's last byte, so the
words' edges and the buffer's start are where it could go wrong."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ratecore._price import parse_numbers

from ratecore import pricing
from ratecore.reference import pricing as ref

ALPHABET = "0123456789" + "+ -*/:" + "a\x00"


def kernel(arr: pa.Array) -> list:
    offsets, data, valid, base = pricing.string_buffers(arr)
    code, value, known, total = parse_numbers(offsets, data, valid, base, len(arr))
    return [(int(c), int(v), int(k), int(t)) for c, v, k, t in zip(code, value, known, total)]


def reference(text: str | None) -> tuple:
    try:
        digits, masked = ref.parse_number(text)
    except ref.NumberProblem as e:
        return (1 if e.reason == "missing_number" else 2, 0, 0, 0)
    return (0, int(digits), len(digits), len(digits) + masked)


def check(texts: list, cut: int = 0) -> None:
    arr = pa.array(texts, pa.string()).slice(cut)
    assert kernel(arr) == [reference(t) for t in texts[cut:]]


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(st.one_of(st.none(), st.text(ALPHABET, max_size=18),
                                st.text("0123456789", min_size=1, max_size=17).map(
                                    lambda s: "+" + s)), max_size=30),
       cut=st.integers(0, 3))
def test_numbers_read_as_the_reference_reads_them(texts, cut):
    check(texts, min(cut, len(texts)))


@pytest.mark.parametrize("n", range(1, 18))
def test_every_length_and_every_digit_in_every_place(n):
    # each number alone in its buffer (no bytes before it), then in a row
    texts = []
    for d in "0123456789":
        for at in range(n):
            s = ["1"] * n
            s[at] = d
            texts.append("".join(s))
    for t in texts[:12]:
        check([t])
        check(["+" + t])
    check(texts)
    check(["+" + t for t in texts])


@pytest.mark.parametrize("bad", ["/", ":", " ", "-", "*", "+", "a", "\x00", "\x7f", "é"])
def test_a_non_digit_anywhere_is_read_as_the_reference_reads_it(bad):
    for n in (7, 8, 9, 12, 15, 16):
        texts = ["9" * at + bad + "9" * (n - at - 1) for at in range(n)]
        check(texts)
        check(["+" + t for t in texts])
        for t in texts:
            check([t])
