"""Reports: figures drawn from a run's history and metrics. The only matplotlib importer.

Plots are pure functions of data (a history, metrics rows, fault windows), so they sit below the
pipeline that calls them after a run, a sweep or a compare."""
