"""Packaging: starbench, with baselines/ and protocols/ installed as starbench.baselines / .protocols.

Packages are found, not listed: every folder under starbench/, baselines/ and protocols/ that holds Python
code ships, so a new sub-package cannot be left out of the wheel.
"""
from pathlib import Path

from setuptools import find_namespace_packages, setup

ROOT = Path(__file__).parent
MAPPED = {"starbench": "starbench", "starbench.baselines": "baselines", "starbench.protocols": "protocols"}


def packages() -> list[str]:
    found = []
    for name, folder in MAPPED.items():
        found.append(name)
        found += [f"{name}.{sub}" for sub in find_namespace_packages(folder, exclude=["__pycache__", "*.__pycache__"])
                  if any((ROOT / folder / sub.replace(".", "/")).glob("*.py"))]
    return found


version = {}
for line in (ROOT / "starbench" / "__init__.py").read_text().splitlines():
    if line.startswith("__version__"):
        exec(line, version)

setup(
    name="starbench",
    version=version["__version__"],
    description="Benchmarking and evaluation toolkit for multi-domain image-to-image translation "
                "(StarGAN and baselines)",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=packages(),
    package_dir=MAPPED,
    install_requires=[
        "torch>=2.1,<3",
        "torchvision>=0.16,<1",
        "torch-fidelity>=0.3,<0.5",
        "numpy>=1.24",
        "pandas>=1.5",
        "click>=8.1",
        "rich>=13",
        "omegaconf>=2.3",
        "tabulate>=0.9",
        "jinja2>=3.1",
        "pillow>=9.4",
        "scipy>=1.10",
        "matplotlib>=3.6",
        "filelock>=3.12",
    ],
    extras_require={"test": ["pytest>=7", "tensorboard>=2.12", "ruff>=0.6"], "tensorboard": ["tensorboard>=2.12"]},
    entry_points={"console_scripts": ["starbench=starbench.cli:main"]},
)
