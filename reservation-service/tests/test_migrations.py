"""The tables are declared once: the models and the migrations agree (autogenerate finds nothing to do)."""

from servicekit.testing import assert_models_match_migrations


def test_models_and_migrations_declare_the_same_tables(app):
    assert_models_match_migrations(app)
