#!/usr/bin/env python3
"""Built-in stand-in for sph2pipe (recipes/timit/run.sh --sph2pipe builtin): NIST SPHERE to WAV.

Kaldi's TIMIT data prep writes ``sph2pipe -f wav FILE |`` into wav.scp; this script answers
that call (``-f wav`` and an optional output file; stdout otherwise) for uncompressed PCM
SPHERE files, which TIMIT's are. Shorten-compressed SPHERE (e.g. WSJ) needs the real sph2pipe:
such a file fails with one line. Standard library only, since it runs under Kaldi's path.sh.
"""
from __future__ import annotations

import sys
import wave
from typing import BinaryIO, Dict, List

USAGE = "usage: sph2pipe.py [-f wav] FILE [OUT]   (uncompressed PCM NIST SPHERE only)"


def read_header(f: BinaryIO, name: str) -> Dict[str, str]:
    """The header fields (``name -type value`` lines between ``NIST_1A`` and ``end_head``)."""
    if f.readline() != b"NIST_1A\n":
        raise ValueError(f"{name}: not a NIST SPHERE file (no NIST_1A line)")
    size = int(f.readline())
    fields: Dict[str, str] = {"header_bytes": str(size)}
    for line in f.read(size - f.tell()).decode("ascii", "replace").splitlines():
        parts = line.split(None, 2)
        if parts and parts[0] == "end_head":
            break
        if len(parts) == 3:
            fields[parts[0]] = parts[2]
    return fields


def convert(path: str, out: BinaryIO) -> None:
    with open(path, "rb") as f:
        h = read_header(f, path)
        coding = h.get("sample_coding", "pcm")
        if coding != "pcm":
            raise ValueError(f"{path}: sample_coding {coding} is not supported by the built-in sph2pipe: "
                             "install Kaldi's (cd $KALDI_ROOT/tools && make sph2pipe)")
        width = int(h.get("sample_n_bytes", "2"))
        channels = int(h.get("channel_count", "1"))
        data = f.read()
    if width == 2 and h.get("sample_byte_format", "01") == "10":  # big-endian samples
        swapped = bytearray(data)
        swapped[0::2], swapped[1::2] = data[1::2], data[0::2]
        data = bytes(swapped)
    with wave.open(out, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(int(h["sample_rate"]))
        w.writeframes(data)


def main(argv: List[str]) -> int:
    args = list(argv)
    if len(args) >= 2 and args[0] == "-f":
        if args[1] != "wav":
            print(f"sph2pipe.py: only -f wav is supported, got -f {args[1]}", file=sys.stderr)
            return 2
        args = args[2:]
    if len(args) not in (1, 2) or args[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    try:
        if len(args) == 2:
            with open(args[1], "wb") as out:
                convert(args[0], out)
        else:
            convert(args[0], sys.stdout.buffer)
    except (OSError, ValueError, KeyError) as e:
        print(f"sph2pipe.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
