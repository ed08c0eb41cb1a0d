"""The machinery that reproduces the papers' tables, built on the library and never needed by a user's own loop.

    python -m rifle_paddle.experiments.configgen    # one run config per table cell (configs/tables/)
    python -m rifle_paddle.experiments.sweep ...    # every cell x seed through the engine, resumable
    python -m rifle_paddle.experiments.report ...   # the table: mean, spread, paired tests, published numbers
    python -m rifle_paddle.experiments.analyze ...  # the paper's mechanism: per-layer weight change

``matrix`` reads the table files, ``runs`` reads run directories back, ``artifacts`` writes tables and figures,
``pretrain`` trains a source model. Dependencies point down: experiments use the engine and the methods; nothing in
the library imports from here.
"""
