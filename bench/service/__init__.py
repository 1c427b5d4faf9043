"""The whole service measured against its engines alone (`python -m bench.service --help`): one
module per part measures, `report` writes the tables into BENCHMARKS.md."""
