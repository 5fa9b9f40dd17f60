"""Which reading of the API docs a fake answers in: the shape our models were written for, or
the variants the newer docs and other clients show (switchable per test, strict otherwise)."""

from __future__ import annotations

from enum import StrEnum


class Shape(StrEnum):
    DOCS = "docs"
    ALT = "alt"
