"""The four services of the pipeline, each runnable as `python -m services.<name>`."""
