"""The strategies, one module per family; import them from :mod:`balancekit`."""
