"""The pool history as inline SVG (no JavaScript or external assets needed)."""

from __future__ import annotations

from typing import Any

WIDTH = 600
HEIGHT = 140
PAD = 4


def history_chart(history: list[dict[str, Any]], max_pool_size: int) -> dict[str, Any]:
    """Polyline points for open / in use / waiting, scaled to the larger of maxPoolSize and the data."""
    top = max([max_pool_size, 1] + [max(s["open"], s["in_use"], s["waiting"]) for s in history])
    count = len(history)

    def points(field: str) -> str:
        if count == 0:
            return ""
        step = (WIDTH - 2 * PAD) / max(count - 1, 1)
        return " ".join(
            f"{PAD + i * step:.1f},{HEIGHT - PAD - (s[field] / top) * (HEIGHT - 2 * PAD):.1f}"
            for i, s in enumerate(history)
        )

    limit_y = HEIGHT - PAD - (max_pool_size / top) * (HEIGHT - 2 * PAD)
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "top": top,
        "samples": count,
        "limit_y": round(limit_y, 1),
        "open": points("open"),
        "in_use": points("in_use"),
        "waiting": points("waiting"),
    }
