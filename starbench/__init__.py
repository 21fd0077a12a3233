"""starbench: benchmarking and evaluation toolkit for multi-domain image-to-image translation.

The Python API (``starbench.api``) does what the command line does, from a notebook::

    import starbench
    result = starbench.run_protocol("rafd_expression", scale="smoke")
    result.tables["table3"]                      # pandas DataFrames; result.folder: where they were written
    run = starbench.train(model="stargan", data="rafd", scale="smoke", run_dir="runs/mine")
    loaded = starbench.load_translator(run.checkpoint)
    starbench.register_model("mine")(MyModel)    # then models=[stargan,mine]
    starbench.compare_folders(old, new).problems # does a rerun reproduce a results folder?

It is loaded on first use, so that ``import starbench.errors`` (and every other module) stays light.
"""
from __future__ import annotations

from typing import Any

from starbench.errors import StarbenchError

__version__ = "0.2.0"

API = ("run_protocol", "train", "load_translator", "configure", "register_model", "compare_folders", "Translator",
       "TranslationModel")
__all__ = ["StarbenchError", "__version__", *API]


def __getattr__(name: str) -> Any:
    if name in API:
        from starbench import api  # lazy: the API imports torch and every layer of starbench
        return getattr(api, name)
    raise AttributeError(f"module 'starbench' has no attribute '{name}'")
