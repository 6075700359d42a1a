"""Hash optimizers: lazy sparse updates of table rows, slots kept row-for-row with the table."""
