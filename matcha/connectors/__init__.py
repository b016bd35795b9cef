"""Connectors: sources that read records and publishers that deliver approved items.

Connection *definitions* live in the project's top-level ``connectors/*.yaml`` (one connection
per file, named by the file's stem); connector *code* lives here, one module per kind.
"""
