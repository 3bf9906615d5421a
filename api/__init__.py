"""The REST API, the CLI (`kgmem`) and the MCP server: kgmem's front doors.

The top layer: it may import `agents`, `memory` and `graph`; nothing imports it.
"""
