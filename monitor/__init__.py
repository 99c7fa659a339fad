from parsers._accel import prefer_fresh_sources

prefer_fresh_sources(__name__, __path__[0])      # a compiled module older than its source is not used
