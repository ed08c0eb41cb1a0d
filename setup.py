"""rifle-paddle. Paddle itself is an extra: `pip install -e .[cpu]` for the CPU wheel; GPU users install
paddlepaddle-gpu themselves (both wheels provide the `paddle` module and must not be mixed). The supported range is
rifle_paddle/core/paddle_version.py's, which `import rifle_paddle` enforces."""
import re

from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as f:
    long_description = f.read()
with open("rifle_paddle/__init__.py", encoding="utf-8") as f:  # one version string, the package's
    version = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)
with open("rifle_paddle/core/paddle_version.py", encoding="utf-8") as f:  # the supported Paddle range, stated once
    text = f.read()
    paddle_range = ">={},<{}".format(*(re.search(rf'^{name} = "([^"]+)"', text, re.M).group(1)
                                       for name in ("OLDEST", "BEYOND")))

setup(
    name="rifle-paddle",
    version=version,
    description="Deep transfer learning for image classification in PaddlePaddle: RIFLE and DTNH",
    long_description=long_description,
    long_description_content_type="text/markdown",
    license="Apache-2.0",  # as PaddlePaddle's; the text is LICENSE, shipped in the wheel's metadata
    license_files=["LICENSE"],
    python_requires=">=3.10",
    # the top-level configs/ ships inside the wheel as rifle_paddle/configs/ (config/packaged.py finds either)
    packages=find_packages(include=["rifle_paddle", "rifle_paddle.*"]) + ["rifle_paddle.configs"],
    package_dir={"rifle_paddle.configs": "configs"},
    package_data={"rifle_paddle": ["experiments/published.yaml"], "rifle_paddle.configs": ["*.yaml", "*/*.yaml"]},
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
        "cpu": [f"paddlepaddle{paddle_range}"],
        # wheel: tests/test_install.py builds this package offline (--no-build-isolation) with the environment's
        # setuptools, which before 70.1 has no bdist_wheel of its own (a fresh Python 3.11 ships 65.5)
        "test": ["pytest>=7.3", "scipy>=1.9", "wheel>=0.38"],
        "dev": [f"paddlepaddle{paddle_range}", "pytest>=7.3", "scipy>=1.9", "wheel>=0.38", "submitit>=1.5"],
        # a sweep as SLURM jobs (python -m rifle_paddle.experiments.sweep ... --scheduler slurm; docs/tables.md)
        "slurm": ["submitit>=1.5"],
    },
    entry_points={"console_scripts": ["rifle-train=rifle_paddle.app.cli:train_main",
                                      "rifle-eval=rifle_paddle.app.cli:eval_main",
                                      "rifle-export=rifle_paddle.deploy.export:main",
                                      "rifle-predict=rifle_paddle.deploy.predict:main",
                                      "rifle-selftest=rifle_paddle.app.selftest:main",
                                      "rifle-check-data=rifle_paddle.app.check_data:main"]},
    classifiers=["Programming Language :: Python :: 3", "License :: OSI Approved :: Apache Software License",
                 "Topic :: Scientific/Engineering :: Artificial Intelligence"],
)
