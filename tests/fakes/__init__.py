"""Fakes of the outside systems the tests, the chaos suite and the bench run against."""
