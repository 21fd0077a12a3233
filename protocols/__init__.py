"""Evaluation protocols, installed as starbench.protocols."""
