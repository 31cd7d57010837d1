"""The local stack: the same code brings the platform up for `make dev` and for the tests."""
