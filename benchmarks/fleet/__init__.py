"""Fleet simulator: many simulated agents against a real WCMS server."""
