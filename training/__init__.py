"""Training pipelines and the `vea` command line for ML engineers."""
