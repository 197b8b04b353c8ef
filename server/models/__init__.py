"""Model files: the registry of known models, resumable verified downloads, offline
imports, and the messages that say what is missing and how to fix it."""
