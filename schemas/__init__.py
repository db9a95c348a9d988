"""Schemas the project validates against: JSON Schemas for configs and the curated TFDV schemas."""

import pathlib

SCHEMA_DIR = pathlib.Path(__file__).resolve().parent
