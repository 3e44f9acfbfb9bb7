"""The figures as a reader sees them (issue 23): the reliability diagram shows each bin's
accuracy and mean confidence whichever is the higher, the scales figure names what it
draws, labels its axes and prints plain numbers, the close-enough figure's axes are
labelled in words and its legend hides no line."""

import numpy as np
import pytest
from helpers import tiny_dataset, tiny_experiment
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.patches import Rectangle

from minits import plots
from minits.experiments import data as experiment_data
from minits.experiments.sweep import run_experiment


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    """The summary of a tiny sweep: traditional, two-scale at a huge eta and at 0.01."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(experiment_data, "_DATA", {})
        mp.setattr(experiment_data, "_TEST_INPUTS", {})
        experiment_data.remember_split("tiny", "train", None, tiny_dataset(96, "train", 1))
        experiment_data.remember_split("tiny", "test", None, tiny_dataset(40, "test", 2))
        out = str(tmp_path_factory.mktemp("plots"))
        summary, _, _ = run_experiment(tiny_experiment(), out, show_progress=False)
    return summary


@pytest.fixture
def drawn(monkeypatch, tmp_path):
    """Call drawn(function, summary): the figure that function saves, drawn."""
    figures, real_save = [], plots._save

    def save(fig, path, title, **kwargs):
        figures.append(fig)
        return real_save(fig, path, title, **kwargs)

    monkeypatch.setattr(plots, "_save", save)

    def draw(function, summary):
        assert function(summary, str(tmp_path / "figure.png"))
        fig = figures[-1]
        FigureCanvasAgg(fig).draw()  # _save closed it: a canvas of its own to measure on
        return fig

    return draw


def _spans(ax, left):
    """(bottom, top) of every rectangle of `ax` that starts at x = left."""
    return {(round(p.get_y(), 9), round(p.get_y() + p.get_height(), 9))
            for p in ax.patches if isinstance(p, Rectangle) and np.isclose(p.get_x(), left)}


def test_reliability_reads_accuracy_and_confidence_of_every_bin(table, drawn):
    fig = drawn(plots.reliability, table)
    pair = plots._best_pair(table)
    for ax, row in zip(fig.axes[:2], pair, strict=True):
        edges, conf, acc, count = plots.pooled_reliability(table.groups[row.key])
        marks = [seg for c in ax.collections if isinstance(c, LineCollection)
                 for seg in c.get_segments()]
        for i in np.flatnonzero(count > 0):
            spans = _spans(ax, edges[i])
            low, high = sorted((conf[i], acc[i]))
            assert any(np.isclose(b, 0) and np.isclose(t, acc[i]) for b, t in spans), i
            assert any(np.isclose(b, low) and np.isclose(t, high) for b, t in spans), i
            # the confidence is drawn where it is, a mark across the bin
            assert any(np.allclose(seg[:, 1], conf[i]) and np.isclose(seg[0, 0], edges[i])
                       for seg in marks), i
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert any("confidence" in t for t in labels) and any("underconfident" in t for t in labels)


def test_scales_names_what_it_draws_and_prints_plain_numbers(table, drawn):
    fig = drawn(plots.scales, table)
    left, right = fig.axes[:2]
    assert right.get_legend() is not None and right.get_ylabel() and left.get_ylabel()
    assert "R1" in right.get_title() and "R2" in right.get_title()
    assert "17" not in right.get_title() and "R_s" not in right.get_title()
    for ax in (left, right):
        ticks = [t.get_text() for t in ax.get_yticklabels() + ax.get_yticklabels(minor=True)]
        assert any(ticks) and not any("^" in t or "times" in t for t in ticks), ticks
    # lines on top of one another stay apart: each loss has a marker of its own
    markers = {line.get_marker() for line in left.get_lines()}
    assert len(markers) == len(left.get_lines()) == 3


def test_close_enough_is_labelled_in_words_and_its_legend_hides_no_line(table, drawn):
    fig = drawn(plots.close_enough, table)
    renderer = fig.canvas.get_renderer()
    legends = fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]
    assert legends
    for ax in fig.axes[:2]:
        assert len(ax.get_xlabel()) > 10 and "%" in ax.get_ylabel()
        assert ax.get_xlabel() != "at" and not ax.get_ylabel().startswith("acc_at")
        for legend in legends:
            box = legend.get_window_extent(renderer)
            assert not box.overlaps(ax.get_window_extent(renderer))
