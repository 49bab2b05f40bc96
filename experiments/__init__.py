"""gmmlab's experiments: data sets, sweeps and the ``gmmlab`` command line."""
