"""The offline model copy the models tests use, for the binary test too."""

from tests.models.conftest import offline_copy

__all__ = ["offline_copy"]
