"""Probe-hit latency benchmarks; a package so tests can import bench.harness."""
