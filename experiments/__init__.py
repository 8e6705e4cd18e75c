"""Command-line jobs: training, sweeps and benchmarks."""
