"""The public HTTP edge: views, serializers, parsers, throttles, errors, probes."""
