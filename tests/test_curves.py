"""The plateau test on constructed learning curves: flat, still falling, noisy, and too short to tell."""
import numpy as np

from starbench.evaluate.curves import plateau, render_curve
from starbench.report import plt

STEPS = [125 * k for k in range(1, 17)]  # 16 points up to 2000: the last 25% holds 5 of them


def curve(values):
    return list(zip(STEPS, values))


def test_flat_curve_converges():
    values = list(np.linspace(80, 20, 8)) + [14, 12.5, 12, 12.4, 11.8, 12.2, 12.1, 12.0]
    verdict = plateau(curve(values), halfwidth=3.0)
    assert verdict.converged is True and verdict.text() == "yes" and "steps 1500-2000" in verdict.reason


def test_falling_curve_does_not():
    values = list(np.linspace(80, 10, 16))  # still falling by ~4.7 points per step of the curve
    verdict = plateau(curve(values), halfwidth=3.0)
    assert verdict.converged is False and verdict.text().startswith("NO (trend -18.7 over steps 1500-2000")


def test_noisy_curve_is_judged_by_its_trend_and_its_swings():
    rng = np.random.default_rng(0)
    calm = [20.0 + rng.uniform(-1, 1) for _ in STEPS]
    swinging = [20.0 + (5 if k % 2 else -5) for k in range(16)]  # DIAT-like: ±5 between neighbours
    one_outlier = [20.0] * 15 + [23.5]  # a noisy last point alone does not decide
    assert plateau(curve(calm), halfwidth=3.0).converged is True
    verdict = plateau(curve(swinging), halfwidth=3.0)
    assert verdict.converged is False and verdict.reason.startswith("swings sd 6.3")
    assert plateau(curve(swinging), halfwidth=13.0).converged is True  # a wider interval tolerates the swings
    assert plateau(curve(one_outlier), halfwidth=3.0).converged is True


def test_too_few_points_cannot_tell():
    assert plateau([], 3.0).text().startswith("unknown (no learning curve")
    assert plateau([(1000, 20.0), (2000, 19.0)], 3.0).text() == (
        "unknown (1 curve point(s) in the last 25% of training, 3 needed)")
    # eight evenly spaced points (curve_points=8) are the fewest that can tell
    eight = [(250 * k, 10.0) for k in range(1, 9)]
    assert plateau(eight, 3.0).converged is True


def test_a_curve_figure_keeps_its_title_inside_the_figure_with_one_panel_or_several(tmp_path, monkeypatch):
    pyplot = plt()
    figures = []
    monkeypatch.setattr(pyplot, "close", lambda fig=None: figures.append(fig))
    points = [{"method": m, "seed": seed, "step": step, "error %": 50.0 / step + seed, "L1 to ground truth": 0.1}
              for m in ("a", "b") for seed in (0, 1, 2) for step in (1, 2, 3, 4)]
    for panels in (["error %"], ["error %", "L1 to ground truth"]):
        render_curve({"protocol": "celeba_attributes", "curve": [{k: v for k, v in p.items() if k in
                                                                  ("method", "seed", "step", *panels)}
                                                                 for p in points]}, tmp_path)
        fig = figures[-1]
        assert len(fig.axes) == len(panels)
        box = fig._suptitle.get_window_extent(fig.canvas.get_renderer())
        assert 0 <= box.x0 and box.x1 <= fig.bbox.width, (panels, box, fig.bbox.width)
