"""The bench's picture: events/s by batch size for qsplit, the original and
L, one panel per server layout (PNG, matplotlib from the ``bench`` extra)."""

from __future__ import annotations

from pathlib import Path

from report import MODE_LABELS

try:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
except ImportError:  # pragma: no cover - reported by missing()
    plt = None


def missing() -> str:
    return "matplotlib is not installed: .venv/bin/pip install -e '.[bench]' (make bench does it)"


def draw(summary: dict, path: Path) -> bool:
    """Draw *summary*'s ev/s by batch size into *path*; False when
    matplotlib is missing."""
    if plt is None:
        return False
    modes = list(summary["modes"].items())
    fig, axes = plt.subplots(1, len(modes), figsize=(5.5 * len(modes), 4.2), squeeze=False, sharey=True)
    for ax, (mode, m) in zip(axes[0], modes):
        rows = sorted(m["by_batch_size"], key=lambda r: r["batch_size"])
        sizes = [r["batch_size"] for r in rows]
        for key, label, style in (("qsplit", "qsplit, read_ahead = 1", "o-"), ("qsplit_seq", "qsplit, read_ahead = 0", "o:"),
                                  ("original", "original (python-pgq SerialConsumer)", "s--")):
            pts = [(r["batch_size"], r[key]) for r in rows if r[key]]
            if pts:
                ax.plot(*zip(*pts), style, label=label)
                for x, y in pts if key != "qsplit_seq" else ():
                    ax.annotate(f"{y / 1000:.0f}k", (x, y), textcoords="offset points", xytext=(0, 6),
                                ha="center", fontsize=8)
        lim = rows[0]["limit"] if rows else None
        if lim:
            ax.axhline(lim, color="grey", linestyle=":", label=f"L: COPY pipe, one table ({lim / 1000:.0f}k)")
        ax.set_xscale("log")
        ax.set_yscale("log")  # L is ~100 x the smallest batches
        ax.set_xticks(sizes, [f"{s:,}" for s in sizes])
        ax.minorticks_off()
        ax.set_xlabel("events per batch")
        ax.set_title(MODE_LABELS.get(mode, mode))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    axes[0][0].set_ylabel("events/s (median, log scale)")
    fig.suptitle("qsplit, the original queue_splitter and L, 20 target queues", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
