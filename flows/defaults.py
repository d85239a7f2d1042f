"""Defaults that both flows.settings and the light entry point (flows.entry) read."""

WAREHOUSE = "racemine.duckdb"  # the warehouse file, relative to the working folder
CONFIG_FILE = "racemine.toml"  # the optional config file, unless RACEMINE_CONFIG names one
