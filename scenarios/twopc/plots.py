"""Figures of a twopc run (drawn by simulator.plots, the only matplotlib user)."""

from __future__ import annotations


def draw(run, folder, shade) -> list[str]:
    return []
