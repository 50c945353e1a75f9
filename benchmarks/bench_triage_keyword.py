"""Keyword benchmark: ``KeywordMatcher.match`` against a compiled ``re`` alternation, captions/s per core.

Run by hand (it is not a test)::

    python benchmarks/bench_triage_keyword.py [--captions 200000 --terms 500 --batch 65536 --repeat 3]

Why it is built this way:

* Captions and terms are generated (seeded): terms are pronounceable nonsense words, captions are
  neutral English-like text with some capitals, punctuation, numbers, non-ASCII words and spelling
  games ("T.E.A", "t3a"), and about one caption in twenty holds a term. Nothing is read or downloaded.
* One process, one core: the figures are captions per second per core.
* The baseline is what a first implementation would write: one compiled ``re`` alternation of the
  same terms with ``\\b`` on both sides, run per caption over the captions *already normalised*
  (its normalisation is not timed). expunge is timed including :func:`normalise`, so the ratio is
  conservative. A third line times the same automaton called once per caption instead of once per
  batch, the choice ``KeywordMatcher`` made.
* Each variant runs ``--repeat`` times and the best time counts (other work only ever adds time).
* Correctness is checked, not assumed: the three must find the same (row, term) pairs, and the
  planted ones among them.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections.abc import Callable
from typing import Any

import ahocorasick_rs
import numpy as np
import pyarrow as pa

from expunge.signals.keyword import KeywordMatcher, TermList, normalise

_WORD_TEXT = (
    "a the of with on in and at by for from photo picture image view close up old new small large "
    "lighthouse teapot violin garden river morning window yellow bicycle harbour mountain cloud sunny "
    "table chair wooden blue painting kitchen coast sunset forest autumn winter street market bridge "
    "vintage modern white green red black house boat train station museum flower basket orange lemon "
    "poster card vector illustration design pattern background texture sketch print canvas frame"
)
WORDS = _WORD_TEXT.split()
EXTRAS = ("café", "crème", "über", "naïve", "2024", "4k", "3d", "1950s", "x2", "#1", "-", "&", "|", "…")
SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "su", "dor", "lin", "mar", "tek", "vul")


def make_terms(n: int, rng: random.Random) -> list[str]:
    """``n`` distinct nonsense words of 3-4 syllables (none is a word of WORDS or a part of another)."""
    terms: set[str] = set()
    while len(terms) < n:
        terms.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(3, 4))))
    return sorted(terms)


def _disguise(term: str, rng: random.Random) -> str:
    kind = rng.randrange(4)
    if kind == 0:
        return term.upper()
    if kind == 1:
        return ".".join(term)
    if kind == 2:
        return term.replace("e", "3").replace("o", "0")
    return term.capitalize()


def make_captions(n: int, terms: list[str], rng: random.Random) -> tuple[list[str], set[tuple[int, str]]]:
    """``n`` captions and the (row, term) pairs planted in them."""
    captions, planted = [], set()
    for row in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(4, 14))]
        if rng.random() < 0.15:
            words.insert(rng.randrange(len(words) + 1), rng.choice(EXTRAS))
        if rng.random() < 0.05:
            term = rng.choice(terms)
            words.insert(rng.randrange(len(words) + 1), _disguise(term, rng))
            planted.add((row, term))
        text = " ".join(words)
        captions.append(text.capitalize() + ("." if rng.random() < 0.5 else ""))
    return captions, planted


def _best(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def _batches(captions: pa.Array, size: int) -> list[pa.Array]:
    return [captions.slice(i, size) for i in range(0, len(captions), size)]


def run(
    n_captions: int, n_terms: int = 500, batch: int = 65_536, repeat: int = 3, seed: int = 0
) -> dict[str, Any]:
    rng = random.Random(seed)
    raw_terms = make_terms(n_terms, rng)
    texts, planted = make_captions(n_captions, raw_terms, rng)
    captions = pa.array(texts, pa.string())
    normal_terms = normalise(pa.array(raw_terms)).to_pylist()
    terms = TermList(tuple(sorted(normal_terms)), ("",) * n_terms, "synthetic")
    matcher = KeywordMatcher(terms)

    def expunge_match() -> set[tuple[int, str]]:
        found: set[tuple[int, str]] = set()
        for i, part in enumerate(_batches(captions, batch)):
            rows, idx = matcher.match(part)
            found.update(zip((rows + i * batch).tolist(), [terms.terms[j] for j in idx], strict=True))
        return found

    seconds_expunge, found_expunge = _best(expunge_match, repeat)

    normalised = [s or "" for s in normalise(captions).to_pylist()]  # not timed: the baselines' input
    pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, terms.terms)) + r")\b")

    def regex_match() -> set[tuple[int, str]]:
        return {(row, m) for row, text in enumerate(normalised) for m in pattern.findall(text)}

    seconds_regex, found_regex = _best(regex_match, repeat)

    automaton = ahocorasick_rs.AhoCorasick(list(terms.terms))

    def per_caption() -> set[tuple[int, str]]:
        found: set[tuple[int, str]] = set()
        for i, part in enumerate(_batches(captions, batch)):
            for row, text in enumerate(normalise(part).to_pylist(), start=i * batch):
                text = text or ""
                for t, start, end in automaton.find_matches_as_indexes(text, overlapping=True):
                    before = start == 0 or not text[start - 1].isalnum()
                    after = end == len(text) or not text[end].isalnum()
                    if before and after:
                        found.add((row, terms.terms[t]))
        return found

    seconds_per_caption, found_per_caption = _best(per_caption, repeat)

    started = time.perf_counter()
    normalise(captions)
    seconds_normalise = time.perf_counter() - started
    return {
        "captions": n_captions,
        "terms": n_terms,
        "batch": batch,
        "mean_caption_chars": float(np.mean([len(t) for t in texts])),
        "planted": len(planted),
        "found": len(found_expunge),
        "keyword_seconds": seconds_expunge,
        "keyword_captions_per_s": n_captions / seconds_expunge,
        "normalise_seconds_once": seconds_normalise,
        "regex_seconds": seconds_regex,
        "regex_captions_per_s": n_captions / seconds_regex,
        "per_caption_automaton_seconds": seconds_per_caption,
        "per_caption_automaton_captions_per_s": n_captions / seconds_per_caption,
        "ratio_keyword_over_regex": seconds_regex / seconds_expunge,
        "agree_with_regex": found_expunge == found_regex,
        "agree_with_per_caption": found_expunge == found_per_caption,
        "planted_found": planted <= found_expunge,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--captions", type=int, default=200_000)
    p.add_argument("--terms", type=int, default=500)
    p.add_argument("--batch", type=int, default=65_536, help="captions per KeywordMatcher.match call")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    r = run(args.captions, args.terms, args.batch, args.repeat, args.seed)
    print(
        f"{r['captions']:,} captions (mean {r['mean_caption_chars']:.0f} chars), {r['terms']} terms, "
        f"batches of {r['batch']:,}, best of {args.repeat}, one process"
    )
    print(
        f"  expunge KeywordMatcher.match (normalise included) {r['keyword_seconds']:.3f} s  "
        f"{r['keyword_captions_per_s']:>12,.0f} captions/s  "
        f"(normalise alone {r['normalise_seconds_once']:.3f} s)"
    )
    print(
        f"  re alternation with \\b, pre-normalised captions   {r['regex_seconds']:.3f} s  "
        f"{r['regex_captions_per_s']:>12,.0f} captions/s"
    )
    print(
        f"  same automaton, one call per caption (norm. incl.) {r['per_caption_automaton_seconds']:.3f} s  "
        f"{r['per_caption_automaton_captions_per_s']:>12,.0f} captions/s"
    )
    print(f"  ratio expunge / re: {r['ratio_keyword_over_regex']:.1f}x faster")
    ok = r["agree_with_regex"] and r["agree_with_per_caption"] and r["planted_found"]
    print(
        f"  correctness: {r['found']:,} (row, term) pairs, {r['planted']:,} planted; agree with re "
        f"{r['agree_with_regex']}, with per-caption {r['agree_with_per_caption']}, planted all found "
        f"{r['planted_found']}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
