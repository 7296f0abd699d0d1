"""`make bench`: the performance figures of issue 7, each beside a reference from the same run."""
