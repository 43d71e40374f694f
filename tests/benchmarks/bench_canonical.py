"""Speed of canonical_json against rfc8785.dumps, and of parse_json against json.loads, on seeded documents.

Three kinds of document: OpenAlex-style work responses of about 2 KB (many keys, nested arrays, nulls, ints, a few
floats), MediaWiki-style pages (a few keys around one 2-20 KB wikitext with Unicode) and float-heavy documents
(hundreds of floats from every exponent range, subnormals and integral values included). Every output is first
checked byte for byte against rfc8785. parse_json reads the documents as json.dumps writes them (a Python capture
tool's output) and in canonical form. The floor is msgspec.json.encode(order="sorted") (for parsing, msgspec.json.decode), measured in
the same run on the same documents, in alternating rounds.

    PYTHONPATH=. python tests/benchmarks/bench_canonical.py [--docs 300] [--repeat 7] [--seed N]

Prints one JSON line per document kind and operation; exits 1 if canonical_json misses its target ratio.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import rfc8785

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from eventlog.format.canonical import canonical_json, parse_json

SEED = 8785
TARGETS = {"openalex": 10.0, "mediawiki": 4.0, "floats": 3.0}

_WORDS = ("the", "of", "and", "city", "river", "canton", "Bern", "population", "history", "century", "bridge",
          "Zürich", "Genève", "naïve", "café", "Ærø", "Škoda", "Łódź", "東京", "北京大学", "Москва", "Αθήνα",
          "القاهرة", "résumé", "–", "—", "„Altstadt“", "«cité»", "ˈbɛrn", "€", "°C", "km²", "½", "…")  # noqa: RUF001
_MARKUP = ("[[", "]]", "'''", "''", "{{Infobox|", "}}", "== History ==\n", "\n* ", "<ref>", "</ref>", "\n\n",
           "[https://example.org/a?b=1&c=2 link]", '<span class="x">', "</span>", "\t", '"quoted"', "\\n")
_EMOJI = ("😀", "🎉", "🇨🇭", "❤️", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "🏔")  # noqa: RUF001


def openalex(rng: random.Random, n: int) -> dict[str, Any]:
    """An OpenAlex work response of about 2 KB."""
    work = f"W{2000000000 + n}"
    authors = [{
        "author_position": "first" if i == 0 else "middle",
        "author": {"id": f"https://openalex.org/A{rng.randrange(10**9)}", "display_name": rng.choice(
            ("Ada Lovelace", "Émile Borel", "Zhang Wei", "María José García", "Jan Novák")),
            "orcid": rng.choice((None, f"https://orcid.org/0000-0002-{rng.randrange(10**4):04d}-{rng.randrange(10**4):04d}"))},
        "institutions": [{"id": f"https://openalex.org/I{rng.randrange(10**8)}", "display_name": "University of Bern",
                          "ror": "https://ror.org/02k7v4d05", "country_code": "CH", "type": "education",
                          "lineage": [f"https://openalex.org/I{rng.randrange(10**8)}"]}],
        "countries": ["CH"], "is_corresponding": i == 0, "raw_author_name": "A. Author",
        "raw_affiliation_strings": ["University of Bern, Switzerland"],
    } for i in range(rng.randint(2, 3))]
    return {
        "id": f"https://openalex.org/{work}", "doi": rng.choice((None, f"https://doi.org/10.{rng.randrange(10**4)}/x{n}")),
        "title": "Glacier retreat and river discharge in the Aare basin", "display_name": "Glacier retreat",
        "publication_year": rng.randint(1990, 2024), "publication_date": "2021-03-04", "language": "en",
        "ids": {"openalex": f"https://openalex.org/{work}", "mag": rng.randrange(10**10), "pmid": None},
        "primary_location": {"is_oa": rng.random() < 0.5, "landing_page_url": "https://example.org/article",
                             "pdf_url": None, "license": None, "version": "publishedVersion",
                             "source": {"id": "https://openalex.org/S1", "display_name": "Journal of Hydrology",
                                        "issn_l": "0022-1694", "issn": ["0022-1694", "1879-2707"], "is_oa": False,
                                        "host_organization": None, "type": "journal"}},
        "type": "article", "authorships": authors, "cited_by_count": rng.randrange(500),
        "biblio": {"volume": str(rng.randrange(600)), "issue": None, "first_page": "1", "last_page": "12"},
        "is_retracted": False, "fwci": round(rng.random() * 5, 3),
        "citation_normalized_percentile": {"value": round(rng.random(), 6), "is_in_top_1_percent": False},
        "primary_topic": {"id": "https://openalex.org/T10017", "display_name": "Hydrology",
                          "score": round(rng.random(), 4)},
        "concepts": [{"id": f"https://openalex.org/C{rng.randrange(10**9)}", "level": rng.randrange(4),
                      "display_name": "Glacier", "score": round(rng.random(), 6)} for _ in range(2)],
        "counts_by_year": [{"year": 2024 - i, "cited_by_count": rng.randrange(40)} for i in range(rng.randint(3, 5))],
        "referenced_works_count": rng.randrange(80), "updated_date": "2024-05-01T03:04:05.123456",
        "created_date": "2021-03-06",
    }


def wikitext(rng: random.Random, size: int) -> str:
    parts: list[str] = []
    length = 0
    while length < size:
        roll = rng.random()
        piece = (rng.choice(_MARKUP) if roll < 0.12 else rng.choice(_EMOJI) if roll < 0.125
                 else rng.choice(_WORDS))
        parts.append(piece)
        length += len(piece) + 1
    return " ".join(parts)


def mediawiki(rng: random.Random, n: int) -> dict[str, Any]:
    """A MediaWiki query response: a few keys around one 2-20 KB page text."""
    page = 10000 + n
    return {"batchcomplete": "", "query": {"pages": {str(page): {
        "pageid": page, "ns": 0, "title": f"Bern ({n})",
        "revisions": [{"revid": 240000000 + n, "parentid": 239999999 + n, "timestamp": "2024-04-10T10:00:00Z",
                       "slots": {"main": {"contentmodel": "wikitext", "contentformat": "text/x-wiki",
                                          "content": wikitext(rng, rng.randint(2000, 20000))}}}]}}}}


def any_float(rng: random.Random) -> float:
    roll = rng.random()
    if roll < 0.05:
        return rng.uniform(-1, 1) * 2.2250738585072014e-308  # subnormal
    if roll < 0.15:
        return float(rng.randrange(-10**6, 10**6))  # integral
    if roll < 0.2:
        return float(rng.randrange(1, 10**5)) * 10.0 ** rng.randint(14, 22)  # around the 1e21 switch
    if roll < 0.25:
        return rng.random() * 10.0 ** rng.randint(-8, -4)  # around the 1e-6 switch
    value = rng.random() * 10.0 ** rng.randint(-307, 307)
    return -value if rng.random() < 0.5 else value


def floats(rng: random.Random, n: int) -> dict[str, Any]:
    """Hundreds of floats from every exponent range in series and summary objects."""
    return {"dataset": f"sensor-{n}", "unit": "m³/s", "series": [
        {"station": f"S{i}", "values": [any_float(rng) for _ in range(rng.randint(40, 80))],
         "summary": {"min": any_float(rng), "max": any_float(rng), "mean": any_float(rng)}}
        for i in range(rng.randint(4, 6))]}


def per_doc(fns: dict[str, Callable[[Any], object]], docs: list[Any], repeat: int) -> dict[str, float]:
    """Best-of-`repeat` nanoseconds per document for each function, measured in alternating rounds.

    Alternating keeps a burst of load on the machine from favouring one side of a ratio.
    """
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            started = time.perf_counter_ns()
            for doc in docs:
                fn(doc)
            best[name] = min(best[name], (time.perf_counter_ns() - started) / len(docs))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    print(json.dumps({"seed": args.seed, "docs_per_kind": args.docs}), flush=True)
    ok = True
    for kind, make in (("openalex", openalex), ("mediawiki", mediawiki), ("floats", floats)):
        rng = random.Random(f"{args.seed}-{kind}")
        docs = [make(rng, n) for n in range(args.docs)]
        encoded = [rfc8785.dumps(doc) for doc in docs]
        for doc, expected in zip(docs, encoded, strict=True):
            if canonical_json(doc) != expected:
                raise SystemExit(f"{kind}: canonical_json differs from rfc8785 (seed {args.seed})")
        times = per_doc({"ours": canonical_json, "rfc8785": rfc8785.dumps,
                         "floor": msgspec.json.Encoder(order="sorted").encode}, docs, args.repeat)
        ours, reference, floor = times["ours"], times["rfc8785"], times["floor"]
        ratio = reference / ours
        ok = ok and ratio >= TARGETS[kind]
        print(json.dumps({
            "kind": kind, "op": "canonical_json", "bytes_per_doc": round(sum(map(len, encoded)) / len(docs)),
            "ours_ns_per_doc": round(ours), "rfc8785_ns_per_doc": round(reference),
            "speedup_vs_rfc8785": round(ratio, 1), "target": TARGETS[kind],
            "floor_msgspec_sorted_ns_per_doc": round(floor), "ours_over_floor": round(ours / floor, 2),
        }), flush=True)
        # As a Python capture tool writes them, and as compact canonical lines (the log's own form).
        for form, inputs in (("json.dumps", [json.dumps(doc).encode() for doc in docs]), ("canonical", encoded)):
            times = per_doc({"ours": parse_json, "stdlib": json.loads, "floor": msgspec.json.decode}, inputs,
                            args.repeat)
            print(json.dumps({
                "kind": kind, "op": "parse_json", "input": form, "ours_ns_per_doc": round(times["ours"]),
                "json_loads_ns_per_doc": round(times["stdlib"]),
                "speedup_vs_json_loads": round(times["stdlib"] / times["ours"], 1),
                "floor_msgspec_decode_ns_per_doc": round(times["floor"]),
                "ours_over_floor": round(times["ours"] / times["floor"], 2),
            }), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
