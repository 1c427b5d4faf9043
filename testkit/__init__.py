"""Stand-ins for what tests and benchmarks cannot run here (a GPU model server)."""
