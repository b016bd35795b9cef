"""Built-in step types, one module each. See :mod:`matcha.steps.base` for the interface."""
