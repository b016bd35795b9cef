"""Pipeline files: parse (safe YAML with positions) → validate (pydantic + graph checks) → plan."""
