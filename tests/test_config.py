import pytest

from starbench.config import SCALE_PRESETS, resolve, valid_keys
from starbench.errors import StarbenchError
from starbench.evaluate import parallel


def test_defaults_then_preset_then_overrides():
    cfg = resolve([])
    assert cfg.scale == "demo" and cfg.data.image_size == SCALE_PRESETS["demo"]["data"]["image_size"]
    smoke = resolve(["scale=smoke"])
    assert smoke.data.image_size == SCALE_PRESETS["smoke"]["data"]["image_size"]
    # An override beats the preset, whatever the order on the command line.
    cfg = resolve(["data.image_size=48", "scale=smoke"])
    assert cfg.data.image_size == 48 and cfg.data.max_images == SCALE_PRESETS["smoke"]["data"]["max_images"]


def test_shorthand_and_list_values():
    cfg = resolve(["data=celeba", "data.attributes=[Male,Young]", "seed=7", "device=cpu"])
    assert cfg.data.name == "celeba" and list(cfg.data.attributes) == ["Male", "Young"] and cfg.seed == 7


def test_unknown_key_lists_closest_keys():
    with pytest.raises(StarbenchError) as exc:
        resolve(["data.imagesize=64"])
    assert "data.imagesize" in str(exc.value) and "data.image_size" in str(exc.value)
    with pytest.raises(StarbenchError, match="run_dir"):
        resolve(["rundir=x"])


def test_wrong_type_names_key_and_type():
    with pytest.raises(StarbenchError, match=r"data\.image_size.*'big'.*int"):
        resolve(["data.image_size=big"])
    with pytest.raises(StarbenchError, match=r"data\.test_fraction.*float"):
        resolve(["data.test_fraction=most"])
    with pytest.raises(StarbenchError, match=r"'seeds'.*'\[a\]'.*list\[int\]"):  # an optional list: its item type
        resolve(["seeds=[a]"])


def test_bad_values_and_forms():
    with pytest.raises(StarbenchError, match="scale"):
        resolve(["scale=huge"])
    with pytest.raises(StarbenchError, match="device"):
        resolve(["device=tpu"])
    with pytest.raises(StarbenchError, match="key=value"):
        resolve(["scale"])


def test_valid_keys_cover_the_documented_ones():
    keys = valid_keys()
    for key in ("scale", "data.root", "run_dir", "results_dir", "device", "seed", "data.split_by"):
        assert key in keys


def test_jobs_left_unset_trains_two_runs_at_a_time_only_at_demo_scale_on_two_or_more_cores(monkeypatch):
    monkeypatch.setattr(parallel, "cpu_cores", lambda: 2)
    assert parallel.jobs_for(resolve(["device=cpu"])) == 2  # demo: one model cannot keep two cores busy
    assert parallel.jobs_for(resolve(["device=cpu", "scale=smoke"])) == 1  # runs of seconds: a helper only slows
    assert parallel.jobs_for(resolve(["device=cpu", "jobs=1"])) == 1 and parallel.jobs_for(resolve(["jobs=3"])) == 3
    monkeypatch.setattr(parallel, "cpu_cores", lambda: 1)
    assert parallel.jobs_for(resolve(["device=cpu"])) == 1
    with pytest.raises(StarbenchError, match="config key 'jobs'"):
        resolve(["jobs=0"])
