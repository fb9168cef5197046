"""Converters that turn public NER datasets into the project's JSONL records."""
