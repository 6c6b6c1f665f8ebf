"""ratecore: rating and billing core for cloud calling.

Rates call detail records against rate decks with a Cython kernel over Arrow
batches, and writes Parquet that DuckDB SQL turns into billing reports.
"""

__version__ = "0.1.0"
