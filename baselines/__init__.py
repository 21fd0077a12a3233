"""Baselines the StarGAN paper compared against (DIAT, CycleGAN, IcGAN), installed as starbench.baselines."""
