"""JSON Schemas (draft 2020-12) of the TPE/1 manifest and document kinds, shipped as package data."""
