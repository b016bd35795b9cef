"""Model providers: a small embed interface and a small generate interface."""
