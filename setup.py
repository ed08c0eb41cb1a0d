"""rifle-paddle. Paddle itself is an extra: `pip install -e .[cpu]` for the CPU wheel; GPU users install
paddlepaddle-gpu themselves (both wheels provide the `paddle` module and must not be mixed)."""
import re

from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as f:
    long_description = f.read()
with open("rifle_paddle/__init__.py", encoding="utf-8") as f:  # one version string, the package's
    version = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)

setup(
    name="rifle-paddle",
    version=version,
    description="Deep transfer learning for image classification in PaddlePaddle: RIFLE and DTNH",
    long_description=long_description,
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["rifle_paddle", "rifle_paddle.*"]),
    package_data={"rifle_paddle": ["experiments/published.yaml", "configs/*.yaml", "configs/*/*.yaml"]},
    install_requires=[
        "numpy>=1.23",
        "opencv-python-headless>=4.6",
        "PyYAML>=6.0",
        "visualdl>=2.5",
        "scipy>=1.9",  # reads the official .mat annotations (Stanford Cars, Stanford Dogs, Flowers-102)
        "matplotlib>=3.5",  # the report's and the analysis' figures (imported lazily, Agg backend)
        "tqdm>=4.60",  # progress and time left where hapi's bar does not reach: eval.py, the data checker
    ],
    extras_require={
        "cpu": ["paddlepaddle>=3.0,<4"],
        # wheel: tests/test_install.py builds this package offline (--no-build-isolation) with the environment's
        # setuptools, which before 70.1 has no bdist_wheel of its own (a fresh Python 3.11 ships 65.5)
        "test": ["pytest>=7", "scipy>=1.9", "wheel>=0.38"],
        "dev": ["paddlepaddle>=3.0,<4", "pytest>=7", "scipy>=1.9", "wheel>=0.38", "submitit>=1.5"],
        # a sweep as SLURM jobs (python -m rifle_paddle.experiments.sweep ... --scheduler slurm; docs/tables.md)
        "slurm": ["submitit>=1.5"],
    },
    entry_points={"console_scripts": ["rifle-train=rifle_paddle.app.cli:train_main",
                                      "rifle-eval=rifle_paddle.app.cli:eval_main",
                                      "rifle-export=rifle_paddle.deploy.export:main",
                                      "rifle-predict=rifle_paddle.deploy.predict:main",
                                      "rifle-selftest=rifle_paddle.app.selftest:main",
                                      "rifle-check-data=rifle_paddle.app.check_data:main"]},
    classifiers=["Programming Language :: Python :: 3", "Topic :: Scientific/Engineering :: Artificial Intelligence"],
)
