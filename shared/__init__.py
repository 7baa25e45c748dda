"""Contracts shared by every service: configuration, schemas, Redis key names, runtime helpers."""
