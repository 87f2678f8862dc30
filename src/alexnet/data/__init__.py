"""Ingest: sources, download, safe extraction, robust decoding, the chosen subset and its manifest."""
