"""pgdrill's lab: throwaway PostgreSQL clusters and sample data, for the demo, the tests and the
benchmarks. Nothing here is installed on database hosts."""
