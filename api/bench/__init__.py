"""kgmem's benchmarks, all in this one package, which the product's import path never loads.

- `locomo`: conversational recall on LoCoMo-format data (`kgmem bench locomo`);
- `perf`: speed beside mem0 and the MCP reference server (`kgmem bench perf`);
- `briefs`: brief quality on a seeded orchestration history (`kgmem bench briefs`).

Each writes through the product's normal paths and reads through its normal recall and briefs.
"""
