"""Summarise py-spy raw (collapsed) stacks: top self time, inclusive time, and by library.

.venv/bin/python bench/_profile_summary.py PROFILE.txt [--top 30]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")
GROUPS = [
    ("sqlite3 (C, in aiosqlite thread)", ("sqlite3/", "aiosqlite/core.py")),
    ("sqlalchemy", ("sqlalchemy/",)),
    ("aiohttp/yarl/multidict", ("aiohttp/", "yarl/", "multidict/")),
    ("pydantic", ("pydantic",)),
    ("aiogram", ("aiogram/",)),
    ("cryptography (Fernet)", ("cryptography/",)),
    ("json", ("json/",)),
    ("asyncio/selectors", ("asyncio/", "selectors.py")),
    ("bot/", ("bot/",)),
    ("logging", ("logging/",)),
]


def parse(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def short(frame: str) -> str:
    match = FRAME.match(frame)
    if not match:
        return frame
    file = match["file"]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{match['func']} ({file})"


def group_of(stack: list[str]) -> str:
    leaf = stack[-1]
    for name, markers in GROUPS:
        if any(m in leaf for m in markers):
            return name
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    stacks = parse(args.profile)
    total = sum(c for _, c in stacks) or 1
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    groups: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    for stack, count in stacks:
        frames = [short(f) for f in stack]
        own[frames[-1]] += count
        for frame in set(frames):
            incl[frame] += count
        groups[group_of(stack)] += count
        threads[stack[0][:60]] += count
    print(f"{args.profile}: {total} samples")
    print("\nby thread:")
    for name, n in threads.most_common(5):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("\nself time by library (leaf frame):")
    for name, n in groups.most_common():
        print(f"  {100 * n / total:5.1f}%  {name}")
    print(f"\ntop {args.top} self:")
    for name, n in own.most_common(args.top):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print(f"\ntop {args.top} inclusive in bot/ code:")
    shown = 0
    for name, n in incl.most_common():
        if "(bot/" in name:
            print(f"  {100 * n / total:5.1f}%  {name}")
            shown += 1
            if shown >= args.top:
                break


if __name__ == "__main__":
    main()
