"""Generate spec-tests/README.md from the conformance matrix (../shared/CONFORMANCE.md; the
rows of the last report where it is missing) and the results of the last spec-test run
(spec-tests/results.json, written by conftest.py).

    .venv/bin/python spec-tests/report.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

HERE = Path(__file__).parent
MATRIX = [p for p in (HERE.parent / "shared" / "CONFORMANCE.md", HERE.parents[1] / "shared" / "CONFORMANCE.md") if p.exists()]

# Rows whose tests check behaviour worth spelling out (support is partial or an error is the
# expected outcome).
NOTES = {
    "D7": "raw-bits types read as numpy void elements",
    "D8": "strings: read and written in Rust with every selection (native API; pipeline on every store; zarrs' vlen codecs)",
    "D9": "vlen-bytes: as strings (D8)",
    "D11": "fixed_length_utf32 in either byte order (code units swapped one by one, as zarrs does); struct (and zarr 3.1's structured), fixed-length bytes, raw bytes: raw bits in their stored layout (native API and pipeline); bfloat16, the float8 / float6 / float4 types and int2 / int4 / uint2 / uint4 as ml_dtypes' numpy types (raw elements without ml_dtypes), tensorstore's float8_e4m3fn too; unknown data types: UnsupportedError naming them",
    "G4": "read and written, each chunk or shard of its own shape (each shard's index sized for its own inner chunks); run-length edges expanded after their count is checked",
    "C10": "numcodecs.bz2, adler32, fletcher32, zlib, shuffle, bitround, pcodec read and written in Rust; numcodecs.zstd, gzip, blosc as the v3 codecs that write the same streams (numcodecs' defaults filled in); v2 bitround too; numcodecs.delta (v2 delta; storing the type it reads or another of the same kind), numcodecs.lz4 (v2 lz4), numcodecs.crc32 / crc32c (either end), numcodecs.jenkins_lookup3, numcodecs.fixedscaleoffset, quantize, astype, packbits (v2 ids too), zarrs codecs of zuring's own with numpy 2's arithmetic; numcodecs.lzma (v2 lzma; liblzma, byte for byte Python's lzma); numcodecs.* that numpy would run otherwise or refuse (delta storing floats of integers; fixedscaleoffset with an offset out of the elements' range; bitround of integers or of more bits than the mantissa's): UnsupportedError naming the codec; zarr's pipeline falls back",
    "C11": "packbits, bitround, pcodec supported; zfp: UnsupportedError (zarrs' zfp feature needs cmake, not built)",
    "E7": "1M-entry index decoded once and cached; small inner chunks read in runs; a region read planned by its bounds (no per-chunk plan); time and peak memory measured by `small_chunks_bench` (`tiny`: whole read 93 ms and 49 MiB beyond the output, zarrs 264 ms and 48 MiB; crops 5.4x zarrs)",
}
UNSUPPORTED: dict[str, str] = {}

DECISIONS = """## Decisions where the spec is silent

1. Missing chunks, shards and inner chunks read as the fill value.
2. r<N> fill values: an array of N/8 byte values (as zarrs does).
3. Hex float fill values: shorter widths accepted, longer than the type rejected; written in full.
4. A shard-index entry with nbytes 0 and a valid offset is decoded as an empty chunk; codecs that
   cannot decode zero bytes raise CorruptDataError naming the chunk.
5. Bytes-to-bytes codecs after sharding_indexed are read (through zarrs, whole shard); zuring never
   writes them unless the metadata it is given asks for them.
6. zuring writes `zarr.json` exactly as given (3.0 object form); zarrs' 3.1 short-hand
   re-serialisation is not used because zarr-python 3.1 rejects it. Readers accept both.
7. numcodecs.* names written by zarr-python are read with zarr-python's semantics where zarrs
   supports them; zuring never writes them unless asked.
8. A shard-index entry with exactly one of offset/nbytes at 2^64-1 is corrupt
   (CorruptDataError naming the shard file and entry); one pointing past the end of the file or
   overflowing offset + nbytes likewise.
9. Values a stored chunk holds past the array's edge are ignored when read (rule 10) but kept by a
   write into a shard that reaches past the edge (the shard is rewritten in part, never replaced),
   as zarr-python does: after a shrinking resize, growing the array again shows them. A chunk
   (unsharded) covered up to the edge is replaced, as zarr-python does.
10. Zarr v2 datetime64 / timedelta64 arrays are int64 counts of their unit; a null or "NaT" fill
    value is NaT (zarr-python's reading).
11. zuring lays out the inner chunks of shards it creates in C order (native API) or in
    zarr-python's order (its pipeline: Morton, or the sharding codec's `subchunk_write_order`);
    a shard rewritten in part keeps its existing order. Readers accept any order.
12. Zarr v2 complex and unicode arrays with a null fill value read missing chunks as 0j and ""
    (zarr-python's reading; zarrs refuses the null); written metadata keeps the null.
"""


def main() -> None:
    results = json.loads((HERE / "results.json").read_text()) if (HERE / "results.json").exists() else {}
    by_row: dict[str, list[tuple[str, str]]] = {}
    for node, r in results.items():
        for row in r["rows"]:
            # A matrix row's id ("M1", "G4"), or a rule or decision named as it is ("rule 1").
            for rid in re.findall(r"\b[A-Z]\d+\b", row) or [row]:
                by_row.setdefault(rid, []).append((node, r["outcome"]))
    # The matrix's rows (id, feature); where the matrix is not beside the checkout (a fresh
    # clone elsewhere), the rows of the last report, which has the same first two columns.
    source = MATRIX[0] if MATRIX else HERE / "README.md"
    rows = []
    for line in source.read_text().splitlines() if source.exists() else []:
        m = re.match(r"\|\s*([A-Z]\d+)\s*\|\s*([^|]+)\|", line)
        if m:
            rows.append((m.group(1), m.group(2).strip()))
    lines = ["# zuring conformance", "",
             "Generated by `spec-tests/report.py` from the last run of `pytest spec-tests` (see",
             "`scripts/test.sh`). Fixtures were written by zarr-python 3.1.6 and tensorstore",
             "(`fixtures/generate.py`); negative fixtures are built by `fixtures/negative.py`.", "",
             "| Row | Feature | Status | Tests |", "|---|---|---|---|"]
    for rid, feature in rows:
        tests = by_row.get(rid, [])
        if tests:
            failed = [n for n, o in tests if o == "failed"]
            skipped = sum(o == "skipped" for _, o in tests)
            status = "pass" if not failed else f"FAIL ({len(failed)})"
            detail = f"{len(tests) - len(failed) - skipped}/{len(tests)} passed" + (f", {skipped} skipped" if skipped else "")
            if rid in NOTES:
                detail += f"; {NOTES[rid]}"
        else:
            status = "not covered" if rid not in UNSUPPORTED else "not supported / not covered"
            detail = UNSUPPORTED.get(rid, "")
        lines.append(f"| {rid} | {feature} | {status} | {detail} |")
    rules = sorted(k for k in by_row if k.startswith("rule") or k.startswith("decision"))
    if rules:
        lines += ["", "| Rule / decision | Status | Tests |", "|---|---|---|"]
        for k in rules:
            tests = by_row[k]
            failed = [n for n, o in tests if o != "passed"]
            lines.append(f"| {k} | {'pass' if not failed else 'FAIL'} | {len(tests) - len(failed)}/{len(tests)} passed |")
    lines += ["", DECISIONS]
    (HERE / "README.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {HERE / 'README.md'} ({len(rows)} matrix rows from {source}, {len(results)} test results)")


if __name__ == "__main__":
    main()
