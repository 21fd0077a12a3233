import gc
import os
import shutil
import time

import numpy as np
import pytest
import torch

import starbench.data.cache as cache_mod
from starbench.config import resolve
from starbench.data import load_data, load_index, synth
from starbench.data.batches import BatchSampler, iterate_split, to_uint8
from starbench.data.cache import decoded_images, fingerprint
from starbench.data.images import load_image
from starbench.errors import StarbenchError


def _cfg(root, *extra):
    return resolve(["data=rafd", f"data.root={root}", "scale=smoke", "data.max_images=null", *extra])


def test_cache_holds_the_preprocessed_images(rafd_raw, isolated_cache):
    data = load_data(_cfg(rafd_raw, "data.image_size=24"))
    assert data.images.shape == (360, 3, 24, 24) and data.images.dtype == np.uint8
    for i in (0, 100, 359):
        np.testing.assert_array_equal(data.images[i], load_image(data.index.records[i].path, 24))
    assert len(list((isolated_cache / "decoded").glob("*.npy"))) == 1


def test_cache_is_reused_and_redecoded_when_a_file_changes(rafd_raw, isolated_cache, monkeypatch):
    cfg = _cfg(rafd_raw, "data.image_size=24")
    index = load_index(cfg)
    first = decoded_images(index, 24, isolated_cache, show_progress=False)
    key_before = fingerprint(index, 24)
    calls = []
    import starbench.data.cache as cache_mod
    real = cache_mod.read_rgb
    monkeypatch.setattr(cache_mod, "read_rgb", lambda *a: calls.append(a) or real(*a))
    decoded_images(load_index(cfg), 24, isolated_cache, show_progress=False)
    assert calls == []  # same files: no decoding at all
    # change one file (new content, new mtime): a new fingerprint and a full re-decode
    path = index.records[5].path
    from PIL import Image
    Image.new("RGB", (40, 40), (255, 0, 0)).save(path)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    index2 = load_index(cfg)
    assert fingerprint(index2, 24) != key_before
    second = decoded_images(index2, 24, isolated_cache, show_progress=False)
    assert len(calls) == 360
    assert (second[5] != first[5]).any() and second[5][0].min() > 200  # now red
    # a different size or crop is another cache entry
    assert fingerprint(index2, 32) != fingerprint(index2, 24)


def test_the_same_images_elsewhere_keep_their_key(rafd_raw, tmp_path, isolated_cache, monkeypatch):
    """The key is the images' content and their paths inside the data folder: a copied folder (new paths, new
    mtimes) and the synthetic set written again elsewhere find the decoded cache (and the runs keyed by it)."""
    index = load_index(_cfg(rafd_raw, "data.image_size=24"))
    decoded_images(index, 24, isolated_cache, show_progress=False)
    time.sleep(0.01)
    copied = shutil.copytree(rafd_raw, tmp_path / "elsewhere" / "RaFD", copy_function=shutil.copy)
    regenerated = synth.write_rafd(tmp_path / "again" / "RaFD", subjects=5, size=40, seed=3)
    import starbench.data.cache as cache_mod
    calls = []
    real = cache_mod.read_rgb
    monkeypatch.setattr(cache_mod, "read_rgb", lambda *a: calls.append(a) or real(*a))
    for root in (copied, regenerated):
        moved = load_index(_cfg(root, "data.image_size=24"))
        assert os.stat(moved.records[0].path).st_mtime_ns != os.stat(index.records[0].path).st_mtime_ns
        assert fingerprint(moved, 24) == fingerprint(index, 24)
        decoded_images(moved, 24, isolated_cache, show_progress=False)
    assert calls == []
    # other images (another seed of the synthetic set) are another dataset
    other = synth.write_rafd(tmp_path / "other" / "RaFD", subjects=5, size=40, seed=4)
    assert fingerprint(load_index(_cfg(other, "data.image_size=24")), 24) != fingerprint(index, 24)


def test_a_listing_s_content_key_is_kept_on_disk(rafd_raw, isolated_cache, monkeypatch):
    """Reading every file for the content key happens once per file listing: a new process (or the next command)
    finds the key under the listing in the cache and only stats the files; an unreadable stored key is computed
    again, and a changed file is a new listing."""
    cfg = _cfg(rafd_raw, "data.image_size=24")
    key = fingerprint(load_index(cfg), 24, isolated_cache)
    stored = list((isolated_cache / "decoded" / "listings").glob("*.txt"))
    assert len(stored) == 1 and stored[0].read_text().strip() == key

    def as_a_new_process():
        cache_mod._CONTENT_KEYS.clear()
        cache_mod._LISTINGS.clear()

    as_a_new_process()
    real = cache_mod._content_key
    monkeypatch.setattr(cache_mod, "_content_key", lambda *a: pytest.fail("the files were read again"))
    assert fingerprint(load_index(cfg), 24, isolated_cache) == key
    monkeypatch.setattr(cache_mod, "_content_key", real)
    stored[0].write_text("not a key\n")
    as_a_new_process()
    assert fingerprint(load_index(cfg), 24, isolated_cache) == key
    assert stored[0].read_text().strip() == key
    # the same size and mtime but other bytes: its ctime moved, so the listing is new and the files are read
    index = load_index(cfg)
    path = index.records[5].path
    st = os.stat(path)
    data = bytearray(open(path, "rb").read())
    data[-1] ^= 0xFF
    open(path, "wb").write(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    as_a_new_process()
    assert fingerprint(load_index(cfg), 24, isolated_cache) != key
    # the memo of a listing lives as long as its index object
    index = load_index(cfg)
    fingerprint(index, 24, isolated_cache)
    assert id(index) in cache_mod._LISTINGS
    gone = id(index)
    del index
    gc.collect()
    assert gone not in cache_mod._LISTINGS


def test_crop_box_is_applied_and_checked(rafd_raw):
    idx = load_index(_cfg(rafd_raw, "data.crop=[0,0,20,20]"))
    full = load_image(idx.records[0].path, 20)
    cropped = load_image(idx.records[0].path, 20, idx.crop)
    assert (full != cropped).any()
    with pytest.raises(StarbenchError, match="does not fit inside a 40x40 image"):
        load_image(idx.records[0].path, 20, (30, 30, 20, 20))


def _sampler(data, **kw):
    return BatchSampler(data.images, data.labels, data.split("train"), batch_size=8, seed=3, **kw)


def test_batches_are_a_function_of_the_step(rafd_raw):
    data = load_data(_cfg(rafd_raw, "data.image_size=16"))
    s = _sampler(data)
    a, b = s.batch(17), _sampler(data).batch(17)
    assert torch.equal(a.x, b.x) and torch.equal(a.label, b.label)
    assert not torch.equal(s.batch(18).index, a.index)
    assert a.x.dtype == torch.float32 and a.x.min() >= -1 and a.x.max() <= 1
    # labels belong to the rows, flips are horizontal mirror images of the cached rows
    for k in range(len(a.index)):
        row = int(a.index[k])
        np.testing.assert_array_equal(a.label[k].numpy(), data.labels[row])
        u8 = to_uint8(a.x[k]).numpy()
        assert np.array_equal(u8, data.images[row]) or np.array_equal(u8, data.images[row][:, :, ::-1])
    # an epoch visits every training image once
    seen = torch.cat([s.batch(i).index for i in range(s.per_epoch)])
    assert len(set(seen.tolist())) == s.per_epoch * 8


def test_ranks_split_each_global_batch(rafd_raw):
    data = load_data(_cfg(rafd_raw, "data.image_size=16"))
    whole = _sampler(data).batch(4)
    parts = [_sampler(data, rank=r, world_size=2).batch(4) for r in range(2)]
    assert sorted(torch.cat([p.index for p in parts]).tolist()) == sorted(whole.index.tolist())
    with pytest.raises(StarbenchError, match="not divisible"):
        _sampler(data, rank=0, world_size=3)


def test_iterate_split_visits_every_image_once(rafd_raw):
    data = load_data(_cfg(rafd_raw, "data.image_size=16"))
    rows = torch.cat([b.index for b in iterate_split(data.images, data.labels, data.split("test"), 7)])
    assert rows.tolist() == data.split("test").tolist()
