"""The authors' code as an independent oracle: transcriptions of their files, rule by rule, each with file:line.

- ``rifle.py``: the RIFLE authors' training pipeline, github haozhe-an/RIFLE-Paddle-Implementation @ 5985eca
  (``as_data_reader/readers.py``, ``fine_tuning/run.py``, ``as_models/resnet.py``), Paddle 1.x static graph.
- ``delta.py``: the DELTA authors' regularizers and channel scores, github lixingjian/DELTA @ 6ba10d2
  (``train.py``, ``channel_eval.py``, ``run.sh``), PyTorch.

Nothing here imports ``rifle_paddle``: an oracle that called the function it checks could never disagree with it.
Randomness is injected (``rng`` objects with NumPy's method names), so a test can replay the decisions our engine
recorded and compare everything else.
"""
