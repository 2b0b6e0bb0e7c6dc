"""Tests of the coordination package: real processes, real shared memory, real lock files."""
