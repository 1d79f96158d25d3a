"""The benchmarks, one module per nox session (`-- --help` explains each): `pipeline` (bench),
`providers` (bench-providers), `api` (bench-api) and `streams` (bench-streams); the other
modules are their parts. What each measures and how to read it: README, Performance."""
