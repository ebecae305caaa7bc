"""The plan: options in (command line, TOML, Python values), resolved once into a frozen RunPlan."""
