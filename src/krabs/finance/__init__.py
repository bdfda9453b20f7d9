"""Money and the figures computed from it: argument types (currencies, dates, amounts) and pure
functions over deal history and expenses. Nothing here touches the database, so every figure can be
tested by hand-computed numbers."""
