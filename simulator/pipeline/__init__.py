"""The run pipeline: the scenario contract and registry, configuration, one run start to finish,
results folders, and sweeps of runs."""
