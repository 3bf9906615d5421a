"""Benchmarks of kgmem's own product features, run through the product's normal paths (`kgmem bench briefs`)."""
