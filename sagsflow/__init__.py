"""Shared runtime plumbing: configuration, logging, payload encryption, Temporal connections."""
